"""Product lines named in a mail, by keyword; subject mentions weigh more than body ones.

The best-scored line is the main product (rules: `main_product`); its evidence says why."""
from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from mailrouter.model import ProductLine
from mailrouter.parse.text import fold

SUBJECT_WEIGHT = 3
BODY_WEIGHT = 1
BODY_REPEATS = 2  # body occurrences counted per keyword: enough to tell the main product
# Han, kana and hangul (including the jamo NFKD decomposes hangul syllables into).
_CJK = re.compile(
    r"[\u1100-\u11ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)


# A word character that is not CJK: "LED灯具" and "LED照明" contain the word LED, since CJK
# text does not put spaces between words.
_LETTER = r"[^\W\u1100-\u11ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"


@functools.lru_cache(maxsize=1024)
def keyword_pattern(keyword: str, exact_case: bool = False) -> re.Pattern[str] | None:
    """A compiled matcher for one keyword, or None for a blank keyword.

    Latin-script keywords match as whole words with an optional plural "s"/"es"
    ("PCB" finds "PCBs", "valvula" finds "válvulas"); other inflections must be listed.
    CJK keywords match as substrings, since CJK text has no spaces between words.
    An exact-case keyword is matched against the text as written (NFC, not folded), so
    "LED" does not find the verb in "has led us".
    """
    folded = (unicodedata.normalize("NFC", keyword) if exact_case else fold(keyword)).strip()
    if not folded:
        return None
    body = r"\s+".join(re.escape(word) for word in folded.split())
    if _CJK.search(folded):
        return re.compile(body)
    plural = "(?:e?s)?" if re.search(r"[a-z]$", folded, re.IGNORECASE) else ""
    return re.compile(rf"(?<!{_LETTER}){body}{plural}(?!{_LETTER})")


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


@dataclass(frozen=True)
class Text:
    """The subject and body, folded for the case-insensitive keywords and as written (NFC)
    for the exact-case ones; built once per message."""

    subject: str
    body: str
    folded_subject: str
    folded_body: str

    @classmethod
    def of(cls, subject: str, body: str) -> Text:
        return cls(_nfc(subject), _nfc(body), fold(subject), fold(body))


def _nfc(text: str) -> str:
    """Mail is nearly always NFC already; checking is much cheaper than normalising."""
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class LineScore:
    """One product line's score and the keywords behind it, for the decision's reason."""

    id: str
    points: float
    hits: tuple[str, ...]  # "valve x2", "subject 'PCB'"

    def describe(self) -> str:
        points = f"{self.points:g}"
        return f"{self.id} {points} ({', '.join(self.hits)})"


@functools.lru_cache(maxsize=256)
def _patterns(line: ProductLine) -> tuple[tuple[str, bool, re.Pattern[str]], ...]:
    exact = [(k, True, keyword_pattern(k, True)) for k in line.exact_case]
    folded = [(k, False, keyword_pattern(k)) for k in line.keywords]
    return tuple((k, e, p) for k, e, p in exact + folded if p is not None)


def score(line: ProductLine, text: Text) -> LineScore:
    """Subject mentions weigh SUBJECT_WEIGHT each distinct keyword; body mentions count each
    occurrence up to BODY_REPEATS per keyword, so the line a mail is mostly about wins
    without one word repeated many times beating a subject. A place two keywords of the line
    both match ("valve" and "valves" in "valves") counts once."""
    points, hits = 0, []
    taken: dict[str, set[int]] = {"subject": set(), "body": set()}
    for keyword, exact, pattern in _patterns(line):
        subject, body = (text.subject, text.body) if exact else (text.folded_subject, text.folded_body)
        if _new_matches(pattern, subject, taken["subject"], 1):
            points += SUBJECT_WEIGHT
            hits.append(f"subject {keyword!r}")
        if count := _new_matches(pattern, body, taken["body"], BODY_REPEATS):
            points += BODY_WEIGHT * count
            hits.append(f"{keyword} x{count}")
    return LineScore(line.id, points * line.weight, tuple(hits))


def _new_matches(pattern: re.Pattern[str], text: str, taken: set[int], limit: int) -> int:
    """Matches at places no other keyword of the line took, up to `limit`."""
    found = 0
    for match in pattern.finditer(text):
        if match.start() not in taken:
            taken.add(match.start())
            found += 1
            if found == limit:
                break
    return found


def rank_products(subject: str, body: str, lines: tuple[ProductLine, ...]) -> tuple[LineScore, ...]:
    """The product lines mentioned, best score first, ties in configuration order."""
    text = Text.of(subject, body)
    scored = [(score(line, text), index) for index, line in enumerate(lines)]
    ranked = sorted((s for s in scored if s[0].points > 0), key=lambda s: (-s[0].points, s[1]))
    return tuple(s for s, _index in ranked)


def match_products(subject: str, body: str, lines: tuple[ProductLine, ...]) -> tuple[str, ...]:
    """Ids of the product lines mentioned, best score first, ties in configuration order."""
    return tuple(s.id for s in rank_products(subject, body, lines))


def product_evidence(ranked: tuple[LineScore, ...]) -> str:
    """Why the main product won: "VALVE 5 (valve x2, subject 'valve') over PCB 1 (pcb x1)"."""
    if not ranked:
        return ""
    runner_up = f" over {ranked[1].describe()}" if len(ranked) > 1 else ""
    return ranked[0].describe() + runner_up
