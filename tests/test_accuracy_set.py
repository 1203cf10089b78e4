"""Floors on the labelled set (tests/data/inquiries.toml); the full figures are in docs/ACCURACY.md."""
from __future__ import annotations

from collections import Counter

import pytest

from mailrouter.testing.accuracy import (
    Report,
    default_is_supported_by,
    length_curve,
    load_set,
    measure,
)
from tests.factories import example_config

LANGUAGES = {"en", "zh", "es", "pt", "fr", "de", "ru", "ar", "tr", "it", "pl", "ja", "ko"}


@pytest.fixture(scope="module")
def report() -> Report:
    return measure(example_config().parse, load_set())


def test_the_set_covers_every_supported_language_with_short_and_long_texts() -> None:
    items = load_set()
    per_language = Counter(i.lang.split("-")[0] for i in items)
    assert len(items) >= 150
    assert all(per_language[lang] >= 9 for lang in LANGUAGES), per_language
    assert sum(i.short for i in items) >= 40 and sum(not i.short for i in items) >= 100


def test_no_language_is_ever_wrong_only_unclaimed(report: Report) -> None:
    assert report.language["all"].mistakes == []


def test_long_texts_are_right_and_script_languages_are_right_even_short(report: Report) -> None:
    long = report.language["long"]
    assert long.right / long.total >= 0.95
    for lang in ("ar", "ja", "ko", "zh", "zh-TW"):
        assert report.language[lang].right == report.language[lang].total, lang


def test_langdetect_alone_was_wrong_where_we_are_not(report: Report) -> None:
    # The set is a real test: the detector before issue 16 fails it.
    assert report.langdetect_alone["all"].wrong >= 10
    assert report.langdetect_alone["zh-TW"].wrong >= 5


def test_country_and_main_product_on_the_labelled_mail(report: Report) -> None:
    assert report.country.total >= 30 and report.country.mistakes == []
    assert report.country.right / report.country.total >= 0.95
    assert report.product.total >= 25 and report.product.right == report.product.total


def test_default_min_language_chars_is_where_the_curve_reaches_90_percent() -> None:
    assert default_is_supported_by(length_curve(load_set()))
