"""Language of the buyer's own words: the script where it decides, langdetect for the rest.

langdetect is a statistical guess that is confidently wrong on short text ("LED panel price?"
comes out Italian at 0.99999) and confuses scripts it should not (Traditional Chinese read as
Korean). So: below `min_chars` letters nothing is claimed; where a script belongs to one
language (Hangul, Kana, Greek, Thai, Hebrew) or a small family (Han, Cyrillic, Arabic) the
script answers, with letter and character tables for the family; langdetect (deterministic,
see langprofiles.py) answers for Latin-script text only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from langdetect.lang_detect_exception import LangDetectException

from mailrouter.parse.langprofiles import detect_languages

# Default for classify.min_language_chars, read off the curve in docs/ACCURACY.md: the shortest
# Latin-script sample at which langdetect is right on at least 90% of the labelled set
# (20 letters: 88%, 25: 86%, 30: 96%).
DEFAULT_MIN_CHARS = 30
MIN_BODY_LETTERS = 40  # a body shorter than this has the subject added to its sample
SCRIPT_MIN_WEIGHT = 6  # two CJK characters, or six letters of a one-language script
CJK_WEIGHT = 3  # one Han/kana/hangul character carries about a word's information
SAMPLE_LIMIT = 5_000  # langdetect needs a few sentences, not the whole mail
SCRIPT_CONFIDENCE = 0.99  # the script alone decides: only a mislabelled text could be wrong
# Words that are links or addresses, and numbers, say nothing about the language. Matched as
# whole words (`\S+` never backtracks into a word it failed on), not with `\S+@\S+`, which is
# quadratic in the length of a long word without "@".
_WORD = re.compile(r"\S+")
_DIGITS = re.compile(r"\d+")
_NOISE_WORD = re.compile(r"https?://|www\.|.@.")

_SCRIPTS: dict[str, re.Pattern[str]] = {
    "hangul": re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]"),
    "kana": re.compile(r"[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]"),
    "han": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"),
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "arabic": re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]"),
    "greek": re.compile(r"[\u0370-\u03ff]"),
    "thai": re.compile(r"[\u0e00-\u0e7f]"),
    "hebrew": re.compile(r"[\u0590-\u05ff]"),
}
_CJK_SCRIPTS = ("hangul", "kana", "han")
_ONE_LANGUAGE = {"hangul": "ko", "kana": "ja", "greek": "el", "thai": "th", "hebrew": "he"}

# Frequent characters written differently in Traditional and Simplified Chinese (each pair
# at the same position). A mail's count of each decides zh-TW against zh.
_TRADITIONAL = ("們個這來時會說對買賣價報務請謝貨錢區產業電號門燈閥線質數單運輸發關與從為無東車機開"
                "長樣見點國廠場應問題詢規訂購總經網聯絡傳話灣員決設計標貴麼還給讓認識論該寫歡覺"
                "費樂學習專業後實現過環節約區條件類絕緣鋁銅鐵鋼廣圖")
_SIMPLIFIED = ("们个这来时会说对买卖价报务请谢货钱区产业电号门灯阀线质数单运输发关与从为无东车机开"
               "长样见点国厂场应问题询规订购总经网联络传话湾员决设计标贵么还给让认识论该写欢觉"
               "费乐学习专业后实现过环节约区条件类绝缘铝铜铁钢广图")
_TRAD_ONLY = frozenset(t for t, s in zip(_TRADITIONAL, _SIMPLIFIED) if t != s)
_SIMP_ONLY = frozenset(s for t, s in zip(_TRADITIONAL, _SIMPLIFIED) if t != s)

_CYRILLIC_LANGS = ("ru", "uk", "bg", "mk", "sr", "be")
_UKRAINIAN = re.compile(r"[іїєґІЇЄҐ]")
_BELARUSIAN = re.compile(r"[ўЎ]")
_RUSSIAN = re.compile(r"[ыэёЫЭЁ]")  # absent from Ukrainian, Bulgarian, Macedonian, Serbian
_PERSIAN = re.compile(r"[پچژگ]")
_URDU = re.compile(r"[ٹڈڑںے]")


@dataclass(frozen=True)
class Guess:
    """A language and how sure the detector is; `how` says what decided (for reports)."""

    lang: str | None
    prob: float
    how: str  # "script" | "langdetect" | "too short"


def letter_weight(text: str) -> int:
    letters = sum(ch.isalpha() for ch in text)
    return letters + (CJK_WEIGHT - 1) * sum(len(_SCRIPTS[s].findall(text)) for s in _CJK_SCRIPTS)


def sample(body: str, subject: str, min_chars: int = DEFAULT_MIN_CHARS) -> str:
    """The text to detect on: the body, plus the subject when the body is short."""
    cleaned = without_noise(body[:SAMPLE_LIMIT * 4])  # noise removed shrinks it; not by more
    if letter_weight(cleaned) < max(MIN_BODY_LETTERS, min_chars):
        cleaned = without_noise(subject[:SAMPLE_LIMIT]) + "\n" + cleaned
    return cleaned[:SAMPLE_LIMIT]


def without_noise(text: str) -> str:
    """Links, e-mail addresses and numbers replaced by a space."""
    def word(found: re.Match[str]) -> str:
        return " " if _NOISE_WORD.search(found.group()) else found.group()
    return _DIGITS.sub(" ", _WORD.sub(word, text))


def script_counts(text: str) -> dict[str, int]:
    """Characters per non-Latin script, CJK ones weighted, and "latin" for the other letters."""
    counts = {name: len(pattern.findall(text)) for name, pattern in _SCRIPTS.items()}
    others = sum(counts.values())
    counts["latin"] = sum(ch.isalpha() for ch in text) - others
    for name in _CJK_SCRIPTS:
        counts[name] *= CJK_WEIGHT
    return counts


def by_script(text: str, counts: dict[str, int], min_chars: int = DEFAULT_MIN_CHARS) -> Guess | None:
    """The answer the dominant script gives, None for Latin-script text (langdetect's job)."""
    cjk = sum(counts[s] for s in _CJK_SCRIPTS)
    rest = {s: n for s, n in counts.items() if s not in _CJK_SCRIPTS}
    dominant = max(rest, key=rest.__getitem__)
    if cjk >= rest[dominant]:
        return _cjk(text, counts) if cjk >= SCRIPT_MIN_WEIGHT else None
    if dominant == "latin" or rest[dominant] < SCRIPT_MIN_WEIGHT:
        return None
    if dominant in _ONE_LANGUAGE:
        return Guess(_ONE_LANGUAGE[dominant], SCRIPT_CONFIDENCE, "script")
    if dominant == "arabic":
        lang = "fa" if _PERSIAN.search(text) else "ur" if _URDU.search(text) else "ar"
        return Guess(lang, SCRIPT_CONFIDENCE, "script")
    return _cyrillic(text, rest[dominant] >= min_chars)


def _cjk(text: str, counts: dict[str, int]) -> Guess:
    """Hangul is Korean, any real share of kana is Japanese, and Han alone is Chinese."""
    cjk = sum(counts[s] for s in _CJK_SCRIPTS)
    if counts["hangul"] * 5 >= cjk:
        return Guess("ko", SCRIPT_CONFIDENCE, "script")
    if counts["kana"] * 10 >= cjk:
        return Guess("ja", SCRIPT_CONFIDENCE, "script")
    traditional = sum(ch in _TRAD_ONLY for ch in text)
    simplified = sum(ch in _SIMP_ONLY for ch in text)
    if traditional > simplified:
        return Guess("zh-TW", traditional / (traditional + simplified), "script")
    return Guess("zh", SCRIPT_CONFIDENCE, "script")


def _cyrillic(text: str, long_enough: bool) -> Guess:
    """Letters only one language uses decide; otherwise langdetect among Cyrillic languages on
    long enough text. Short text without such letters is Russian - by far the most common
    among buyers - but only as a hint (0.5), below any sensible threshold."""
    if _UKRAINIAN.search(text):
        return Guess("uk", SCRIPT_CONFIDENCE, "script")
    if _BELARUSIAN.search(text):
        return Guess("be", SCRIPT_CONFIDENCE, "script")
    if _RUSSIAN.search(text):
        return Guess("ru", SCRIPT_CONFIDENCE, "script")
    guesses = [g for g in _langdetect(text) if g.lang in _CYRILLIC_LANGS] if long_enough else []
    if not guesses:
        return Guess("ru", 0.5, "script")
    total = sum(g.prob for g in guesses)
    return Guess(guesses[0].lang, guesses[0].prob / total, "langdetect")


def _langdetect(text: str) -> list[Guess]:
    try:
        found = detect_languages(text)
    except LangDetectException:  # no usable features (only symbols, say)
        return []
    return [Guess(g.lang.split("-")[0], g.prob, "langdetect") for g in found]


def guess(body: str, subject: str, min_chars: int = DEFAULT_MIN_CHARS) -> Guess:
    """The best answer, whatever its probability."""
    text = sample(body, subject, min_chars)
    counts = script_counts(text)
    if found := by_script(text, counts, min_chars):
        return found
    if sum(counts.values()) < min_chars:
        return Guess(None, 0.0, "too short")
    guesses = _langdetect(text)
    return guesses[0] if guesses else Guess(None, 0.0, "langdetect")


def detect(body: str, subject: str, threshold: float,
           min_chars: int = DEFAULT_MIN_CHARS) -> tuple[str | None, float]:
    """(ISO 639-1 code, or "zh-TW"; probability), or (None, probability) below the threshold."""
    found = guess(body, subject, min_chars)
    return (found.lang if found.prob >= threshold else None), found.prob
