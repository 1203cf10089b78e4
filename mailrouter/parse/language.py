"""Language of the buyer's own words, with langdetect made deterministic."""
from __future__ import annotations

import re

from langdetect.lang_detect_exception import LangDetectException

from mailrouter.parse.langprofiles import detect_languages

MIN_BODY_LETTERS = 20  # below this the subject is added to the sample
MIN_LETTERS = 10  # below this no language is claimed at all ("OK 123" looks like anything)
CJK_WEIGHT = 3  # one Han/kana/hangul character carries about a word's information
SAMPLE_LIMIT = 5_000  # langdetect needs a few sentences, not the whole mail
# Words that are links or addresses, and numbers, say nothing about the language. Matched as
# whole words (`\S+` never backtracks into a word it failed on), not with `\S+@\S+`, which is
# quadratic in the length of a long word without "@".
_WORD = re.compile(r"\S+")
_DIGITS = re.compile(r"\d+")
_NOISE_WORD = re.compile(r"https?://|www\.|.@.")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def letter_weight(text: str) -> int:
    letters = sum(ch.isalpha() for ch in text)
    return letters + (CJK_WEIGHT - 1) * len(_CJK.findall(text))


def sample(body: str, subject: str) -> str:
    """The text to detect on: the body, plus the subject when the body is too short."""
    cleaned = without_noise(body[:SAMPLE_LIMIT * 4])  # noise removed shrinks it; not by more
    if letter_weight(cleaned) < MIN_BODY_LETTERS:
        cleaned = without_noise(subject[:SAMPLE_LIMIT]) + "\n" + cleaned
    return cleaned[:SAMPLE_LIMIT]


def without_noise(text: str) -> str:
    """Links, e-mail addresses and numbers replaced by a space."""
    def word(found: re.Match[str]) -> str:
        return " " if _NOISE_WORD.search(found.group()) else found.group()
    return _DIGITS.sub(" ", _WORD.sub(word, text))


def detect(body: str, subject: str, threshold: float) -> tuple[str | None, float]:
    """(ISO 639-1 code, probability), or (None, probability) below the threshold."""
    text = sample(body, subject)
    if letter_weight(text) < MIN_LETTERS:
        return None, 0.0
    try:
        best = detect_languages(text)[0]
    except (LangDetectException, IndexError):  # no usable features (only symbols, say)
        return None, 0.0
    lang = best.lang.split("-")[0]  # zh-cn and zh-tw are both "zh" for routing
    return (lang if best.prob >= threshold else None), best.prob
