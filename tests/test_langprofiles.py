"""The sparse language profiles give langdetect's own answers."""
from __future__ import annotations

import pytest
from langdetect import DetectorFactory, detect_langs
from langdetect.detector_factory import init_factory

import langdetect.detector_factory as reference
from mailrouter.parse.langprofiles import _PAIR, detect_languages, profiles
from mailrouter.parse import UnreadableMessage, language, parse_message
from mailrouter.testing.samples import bulk_samples, demo_samples
from tests.factories import example_config

DetectorFactory.seed = 0


@pytest.fixture(scope="module")
def dense():
    init_factory()
    return reference._factory


def test_every_ngram_keeps_langdetects_probabilities(dense) -> None:
    sparse = profiles()
    assert sorted(sparse.langlist) == sorted(dense.langlist)
    assert set(sparse.word_lang_prob_map) == {w for w in dense.word_lang_prob_map if 1 <= len(w) <= 3}
    position = {lang: i for i, lang in enumerate(dense.langlist)}
    for word, packed in list(sparse.word_lang_prob_map.items())[::97]:
        expected = {i: p for i, p in enumerate(dense.word_lang_prob_map[word]) if p}
        got = {position[sparse.langlist[i]]: p for i, p in _PAIR.iter_unpack(packed)}
        assert got == expected, word


def test_same_answers_as_langdetect_on_the_sample_inquiries() -> None:
    config = example_config()
    texts = []
    for sample_mail in [*demo_samples(), *bulk_samples(120)]:
        try:
            inquiry = parse_message(sample_mail.raw, config.parse)
        except UnreadableMessage:  # the demo's broken message
            continue
        texts.append(language.sample(inquiry.text, inquiry.subject))
    compared = [t for t in texts if language.letter_weight(t) >= language.DEFAULT_MIN_CHARS]
    assert len(compared) > 100
    for text in compared:
        expected, got = detect_langs(text), detect_languages(text)
        assert [g.lang for g in got] == [e.lang for e in expected], text[:80]
        assert [g.prob for g in got] == pytest.approx([e.prob for e in expected], abs=1e-9)


@pytest.mark.parametrize("text", [
    "Guten Tag, wir benötigen ein Angebot für 500 Leiterplatten mit Lieferung nach Hamburg.",
    "您好，我们需要五百块线路板的报价，请尽快回复，谢谢。",
    "Здравствуйте, просим выслать коммерческое предложение на поставку клапанов.",
    "Merhaba, paslanmaz çelik vanalar için fiyat teklifi rica ediyoruz.",
    "こんにちは、ステンレスバルブの見積もりをお願いします。",
    "Xin chào, chúng tôi cần báo giá cho van thép không gỉ.",
    "OK thanks",
])
def test_same_answer_as_langdetect(text: str) -> None:
    expected, got = detect_langs(text), detect_languages(text)
    assert [g.lang for g in got] == [e.lang for e in expected]
    assert [g.prob for g in got] == pytest.approx([e.prob for e in expected], abs=1e-9)
