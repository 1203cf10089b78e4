"""Product lines named in a mail, by keyword; subject mentions weigh more than body ones."""
from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailrouter.model import ProductLine

from mailrouter.parse.text import fold

SUBJECT_WEIGHT = 3
BODY_WEIGHT = 1
# Han, kana and hangul (including the jamo NFKD decomposes hangul syllables into).
_CJK = re.compile(
    r"[\u1100-\u11ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)


@functools.lru_cache(maxsize=1024)
def keyword_pattern(keyword: str) -> re.Pattern[str] | None:
    """A compiled matcher for one keyword, or None for a blank keyword.

    Latin-script keywords match as whole words with an optional plural "s"/"es"
    ("PCB" finds "PCBs", "valvula" finds "válvulas"); other inflections must be listed.
    CJK keywords match as substrings, since CJK text has no spaces between words.
    """
    folded = fold(keyword).strip()
    if not folded:
        return None
    body = r"\s+".join(re.escape(word) for word in folded.split())
    if _CJK.search(folded):
        return re.compile(body)
    plural = "(?:e?s)?" if re.search(r"[a-z]$", folded) else ""
    return re.compile(rf"(?<!\w){body}{plural}(?!\w)")


@dataclass(frozen=True)
class KeywordMatcher:
    """A set of keywords matched with the rules of `keyword_pattern` (used by rule conditions)."""

    keywords: tuple[str, ...]

    def __init__(self, keywords: Iterable[str]) -> None:
        object.__setattr__(self, "keywords", tuple(keywords))

    def find(self, text: str) -> tuple[str, ...]:
        """The keywords that occur in `text`, in the order they were given."""
        return self.find_folded(fold(text))

    def find_folded(self, folded_text: str) -> tuple[str, ...]:
        patterns = ((k, keyword_pattern(k)) for k in self.keywords)
        return tuple(k for k, p in patterns if p is not None and p.search(folded_text))


@functools.lru_cache(maxsize=256)
def _matcher(line: ProductLine) -> KeywordMatcher:
    return KeywordMatcher(line.keywords)


def score(line: ProductLine, folded_subject: str, folded_body: str) -> int:
    """Distinct keywords found, weighted by where: repeating one word does not add weight."""
    matcher = _matcher(line)
    return (SUBJECT_WEIGHT * len(matcher.find_folded(folded_subject))
            + BODY_WEIGHT * len(matcher.find_folded(folded_body)))


def match_products(subject: str, body: str, lines: tuple[ProductLine, ...]) -> tuple[str, ...]:
    """Ids of the product lines mentioned, best score first, ties in configuration order."""
    folded_subject, folded_body = fold(subject), fold(body)
    scored = [(score(line, folded_subject, folded_body), index, line.id)
              for index, line in enumerate(lines)]
    ranked = sorted(scored, key=lambda s: (-s[0], s[1]))
    return tuple(pid for points, _index, pid in ranked if points > 0)
