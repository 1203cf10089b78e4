"""Language detection on the buyer's own words."""
from __future__ import annotations

import pytest

from mailrouter.parse.body import html_to_text, split_reply
from mailrouter.parse.language import detect

THRESHOLD = 0.80


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Guten Tag, wir benötigen ein Angebot für 500 Leiterplatten mit Lieferung nach Hamburg.", "de"),
        ("Buenos días, necesitamos una cotización para quinientas válvulas de acero inoxidable.", "es"),
        ("Здравствуйте, просим выслать коммерческое предложение на поставку клапанов.", "ru"),
        ("Bonjour, nous souhaitons recevoir une offre de prix pour des vannes en acier.", "fr"),
        ("Bom dia, gostaríamos de receber uma cotação para válvulas de aço inoxidável.", "pt"),
        ("您好，我们需要五百块线路板的报价，请尽快回复，谢谢。", "zh"),
        ("مرحبا، نود الحصول على عرض أسعار للصمامات المصنوعة من الفولاذ المقاوم للصدأ.", "ar"),
    ],
)
def test_detects_body_language(text: str, expected: str) -> None:
    assert detect(text, "", THRESHOLD)[0] == expected


def test_html_only_mail_is_detected_by_its_text_not_its_markup() -> None:
    html = (
        "<html><head><style>.header{font-family:Arial;color:#333}</style></head><body>"
        "<div class='header'><p>Sehr geehrte Damen und Herren,</p>"
        "<p>bitte senden Sie uns ein Angebot für Ventile aus Edelstahl.</p></div></body></html>"
    )
    text = html_to_text(html)
    assert "font-family" not in text
    assert detect(text, "", THRESHOLD)[0] == "de"


def test_short_spanish_reply_over_long_english_history_is_spanish() -> None:
    history = "\n".join(
        "> Dear customer, thank you for your interest in our products and our company." for _ in range(30)
    )
    mail = f"Necesitamos el precio para mil unidades, por favor.\n\nEl lun, 3 mar 2025, Li <li@f.cn> escribió:\n{history}\n"
    text, _signature = split_reply(mail)
    assert "Dear customer" not in text
    assert detect(text, "Re: Your quotation", THRESHOLD)[0] == "es"


def test_english_subject_does_not_outvote_a_german_body() -> None:
    body = "Wir möchten gerne ein Angebot für Kugelventile erhalten, Menge etwa tausend Stück."
    assert detect(body, "Request for quotation ball valves", THRESHOLD)[0] == "de"


def test_subject_is_used_when_the_body_is_too_short() -> None:
    assert detect("Danke", "Anfrage für Kugelventile aus Edelstahl, bitte Angebot", THRESHOLD)[0] == "de"


@pytest.mark.parametrize("text", ["OK 123", "", "+49 30 1234567", "https://example.com/a/b/c"])
def test_too_little_text_gives_no_language(text: str) -> None:
    assert detect(text, "", THRESHOLD) == (None, 0.0)


def test_below_threshold_keeps_the_probability_but_no_language() -> None:
    language, probability = detect("Guten Tag, wir benötigen ein Angebot für Ventile.", "", 1.01)
    assert language is None
    assert probability > 0.5


def test_detection_is_deterministic() -> None:
    text = "Hola, bom dia, buenos dias, obrigado, gracias amigo"
    assert len({detect(text, "", THRESHOLD) for _ in range(5)}) == 1


# Script decides where it can, and nothing is claimed on too little Latin text.

def test_price_question_with_a_product_subject_is_not_italian() -> None:
    assert detect("price?", "LED panel", THRESHOLD) == (None, 0.0)


def test_big5_traditional_chinese_mail_is_zh_tw_not_korean() -> None:
    from mailrouter.model import ParseSettings
    from mailrouter.parse.message import parse_message

    body = "您好，我們公司想購買LED燈具，請提供報價單和交貨時間，謝謝。\n\n陳先生\n台北市"
    raw = (b"From: chen@ms1.hinet.net\r\nTo: sales@example.com\r\nSubject: =?big5?b?"
           + __import__("base64").b64encode("詢價".encode("big5")) + b"?=\r\n"
           b"Content-Type: text/plain; charset=big5\r\n\r\n" + body.encode("big5"))
    inquiry = parse_message(raw, ParseSettings(free_mail_domains=frozenset()))
    assert inquiry.language == "zh-TW"


@pytest.mark.parametrize(("body", "subject", "expected"), [
    ("견적 부탁드립니다", "", "ko"),
    ("お見積りをお願いします", "", "ja"),
    ("報價單請寄給我們", "", "zh-TW"),
    ("请报价", "", "zh"),
    ("Цена?", "Светодиодные панели", "ru"),
    ("Ціна на панелі?", "", "uk"),
    ("كم السعر؟", "", "ar"),
    ("Τιμή παρακαλώ", "", "el"),
    ("ขอราคาด้วยครับ", "", "th"),
    ("מה המחיר בבקשה", "", "he"),
])
def test_short_text_in_a_deciding_script(body: str, subject: str, expected: str) -> None:
    assert detect(body, subject, THRESHOLD)[0] == expected


def test_min_chars_is_configurable() -> None:
    text = "Bitte senden Sie uns ein Angebot"  # 27 letters
    assert detect(text, "", THRESHOLD, min_chars=30) == (None, 0.0)
    assert detect(text, "", THRESHOLD, min_chars=10)[0] == "de"


def test_short_body_is_read_with_the_subject() -> None:
    assert detect("Danke!", "Anfrage: Angebot für Kugelventile aus Edelstahl", THRESHOLD)[0] == "de"
