"""Accuracy of the parser's evidence on the labelled set tests/data/inquiries.toml.

Shared by the unit test that holds the floors (tests/test_accuracy_set.py) and the report in
docs/ACCURACY.md (bench/accuracy.py). Each labelled text is sent through parse_message as a
mail from a free-mail address, so nothing but the text can tell its country.
"""
from __future__ import annotations

import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from langdetect.lang_detect_exception import LangDetectException

from mailrouter.model import Inquiry, ParseSettings
from mailrouter.parse.langprofiles import detect_languages
from mailrouter.parse.language import DEFAULT_MIN_CHARS, guess, letter_weight
from mailrouter.parse.message import parse_message

LABELLED = Path(__file__).resolve().parents[2] / "tests" / "data" / "inquiries.toml"
SHORT_WEIGHT = 20  # a body under this many letters (CJK x3) counts as a short text
LATIN = ("en", "es", "pt", "fr", "de", "it", "pl", "tr")
CURVE_LENGTHS = (5, 10, 15, 20, 25, 30, 40, 50, 60)


@dataclass(frozen=True)
class Labelled:
    lang: str
    subject: str
    body: str
    sender: str = "buyer@gmail.com"
    country: str | None = None
    product: str | None = None

    @property
    def short(self) -> bool:
        return letter_weight(self.body) < SHORT_WEIGHT

    def raw(self) -> bytes:
        return (f"From: Buyer <{self.sender}>\r\nTo: sales@example.com\r\nSubject: {self.subject}\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\n" + self.body).encode()


def load_set(path: Path = LABELLED) -> list[Labelled]:
    with path.open("rb") as f:
        return [Labelled(**item) for item in tomllib.load(f)["inquiry"]]


@dataclass
class Tally:
    """right / none (nothing claimed) / wrong, and the wrong answers for the report."""

    right: int = 0
    none: int = 0
    wrong: int = 0
    mistakes: list[str] = field(default_factory=list)

    def add(self, expected: str, found: str | None, text: str) -> None:
        if found == expected:
            self.right += 1
        elif found is None:
            self.none += 1
        else:
            self.wrong += 1
            self.mistakes.append(f"{expected} -> {found}: {text[:40]!r}")

    @property
    def total(self) -> int:
        return self.right + self.none + self.wrong


@dataclass
class Report:
    language: dict[str, Tally]  # by expected language, plus "short" and "long"
    langdetect_alone: dict[str, Tally]  # langdetect on the same samples, no length or script rule
    country: Tally
    product: Tally


def measure(settings: ParseSettings, items: list[Labelled]) -> Report:
    report = Report(defaultdict(Tally), defaultdict(Tally), Tally(), Tally())
    for item in items:
        inquiry = parse_message(item.raw(), settings)
        _count_language(report, item, inquiry)
        if item.country:
            report.country.add(item.country, inquiry.country, item.body)
        if item.product:
            report.product.add(item.product, inquiry.products[0] if inquiry.products else None, item.body)
    return report


def _count_language(report: Report, item: Labelled, inquiry: Inquiry) -> None:
    size = "short" if item.short else "long"
    for key in (item.lang, size, "all"):
        report.language[key].add(item.lang, inquiry.language, item.subject + " | " + item.body)
        report.langdetect_alone[key].add(item.lang, _langdetect_alone(item), item.body)


def _langdetect_alone(item: Labelled) -> str | None:
    """What the parser answered before issue 16: langdetect's best guess, zh-tw as zh-TW."""
    try:
        best = detect_languages(item.subject + "\n" + item.body)[0]
    except (LangDetectException, IndexError):  # no features at all
        return None
    return "zh-TW" if best.lang == "zh-tw" else best.lang.split("-")[0]


def length_curve(items: list[Labelled]) -> dict[int, tuple[int, int]]:
    """For Latin-script texts, langdetect on their first N letters: N -> (right, tried).

    The default min_language_chars is the shortest N where langdetect is right at least 90%
    of the time: below it, no answer beats a confident wrong one.
    """
    curve: dict[int, tuple[int, int]] = {}
    texts = [i for i in items if i.lang in LATIN and letter_weight(i.body) >= max(CURVE_LENGTHS)]
    for n in CURVE_LENGTHS:
        right = sum(guess(_first_letters(i.body, n), "", 0).lang == i.lang for i in texts)
        curve[n] = (right, len(texts))
    return curve


def _first_letters(text: str, n: int) -> str:
    seen = 0
    for end, ch in enumerate(text):
        seen += ch.isalpha()
        if seen == n:
            return text[:end + 1]
    return text


def default_is_supported_by(curve: dict[int, tuple[int, int]]) -> bool:
    """DEFAULT_MIN_CHARS is the first length on the curve at 90% or better."""
    first = next((n for n, (right, tried) in curve.items() if tried and right / tried >= 0.9), None)
    return first == DEFAULT_MIN_CHARS
