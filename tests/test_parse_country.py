"""The buyer's country from every clue in the mail, with the evidence that decided it."""
from __future__ import annotations

import pytest

from mailrouter.model import ParseSettings
from mailrouter.parse.country import Clues, Evidence, buyer_country, resolve
from mailrouter.parse.message import parse_message
from mailrouter.parse.places import find_places

SETTINGS = ParseSettings(free_mail_domains=frozenset({"gmail.com", "yahoo.co.uk", "qq.com"}))


def mail(sender: str, body: str, subject: str = "Inquiry") -> bytes:
    return (f"From: Buyer <{sender}>\r\nTo: sales@example.com\r\nSubject: {subject}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


QUOTE = "Hello, please send your best price for 500 LED panels, delivery by sea.\n\n"


def test_gmail_buyer_signing_sevilla_espana_with_a_spanish_phone_is_spain() -> None:
    body = QUOTE + "Best regards,\nCarlos Ruiz\nSevilla, España\nTel. +34 954 21 30 45\n"
    q = parse_message(mail("carlos.ruiz@gmail.com", body), SETTINGS)
    assert (q.country, q.country_source) == ("ES", "phone")
    assert q.country_confidence >= 0.9
    assert "phone +34" in q.country_evidence and "'España'" in q.country_evidence


def test_gmail_buyer_in_houston_with_a_us_phone_is_the_us() -> None:
    body = QUOTE + "Thanks,\nMike Johnson\nHouston, TX, USA\n+1 713 224 3800\n"
    q = parse_message(mail("mike.j@gmail.com", body), SETTINGS)
    assert (q.country, q.country_source) == ("US", "phone")
    assert "phone +1" in q.country_evidence and "'USA'" in q.country_evidence


def test_corporate_cctld_decides_alone_and_the_signature_is_not_read() -> None:
    body = QUOTE + "Regards,\nHans\nPhone +1 713 224 3800\nHouston, USA\n"
    q = parse_message(mail("hans@acme.de", body), SETTINGS)
    assert (q.country, q.country_source, q.country_evidence) == ("DE", "cctld", "ccTLD .de")


def test_country_field_in_a_web_form_beats_everything() -> None:
    body = "Name: Ana Costa\nCountry: Brasil\nMessage: need a quote\n\n+34 954 21 30 45\n"
    q = parse_message(mail("ana.costa@gmail.com", body), SETTINGS)
    assert (q.country, q.country_source) == ("BR", "form")
    assert "Country: 'Brasil'" in q.country_evidence


def test_free_mail_cctld_is_weak_evidence() -> None:
    q = parse_message(mail("tom@yahoo.co.uk", QUOTE), SETTINGS)
    assert (q.country, q.country_source, q.country_confidence) == ("GB", "cctld", 0.5)


def test_chinese_city_in_a_qq_signature() -> None:
    body = "您好，请报价五百个LED面板。\n\n王先生\n深圳市宝安区\n"
    q = parse_message(mail("12345@qq.com", body), SETTINGS)
    assert (q.country, q.country_source) == ("CN", "city")


def test_language_is_only_a_hint_when_nothing_else_is_known() -> None:
    q = parse_message(mail("yamada@gmail.com", "お世話になっております。LEDパネルの見積もりをお願いします。"), SETTINGS)
    assert (q.country, q.country_source, q.country_confidence) == ("JP", "language", 0.25)


def test_no_clue_no_country() -> None:
    q = parse_message(mail("someone@gmail.com", QUOTE), SETTINGS)
    assert (q.country, q.country_confidence, q.country_evidence) == (None, 0.0, "")


def test_conflicting_evidence_is_resolved_by_the_combined_order_and_says_so() -> None:
    # A US mobile, but the buyer signs from Sevilla, España: two kinds for Spain (0.7, 0.6 ->
    # 0.88) outweigh one phone (0.8); the doubt shows in the confidence and the evidence.
    found = [Evidence("US", "phone", "phone +1 in signature", 0.8),
             Evidence("ES", "name", "'España' in signature", 0.7),
             Evidence("ES", "city", "city 'Sevilla' in signature", 0.6)]
    country = resolve(found)
    assert (country.code, country.source) == ("ES", "name")
    assert country.confidence == pytest.approx(0.88 * 0.6, abs=0.01)
    assert "against: phone +1 in signature" in country.evidence


def test_the_same_kind_of_evidence_counts_once_per_country() -> None:
    found = [Evidence("DE", "city", "city 'Berlin'", 0.6), Evidence("DE", "city", "city 'Hamburg'", 0.6)]
    assert resolve(found).confidence == 0.6


def test_clues_from_the_end_of_the_body_when_no_signature_was_split_off() -> None:
    clues = Clues(None, "", None, "com", True, signature="", body=QUOTE + "Ahmed\nRiyadh, KSA", language="en")
    assert buyer_country(clues).code == "SA"


@pytest.mark.parametrize(("text", "expected"), [
    ("ООО «СветТехСнаб», Москва, Россия", {"RU"}),
    ("서울특별시 강남구 테헤란로", {"KR"}),
    ("İstanbul / Türkiye", {"TR"}),
    ("الرياض، المملكة العربية السعودية", {"SA"}),
    ("Warszawa, Polska", {"PL"}),
    ("Lyon, Frankreich", {"FR"}),
    ("東京都港区", {"JP"}),
    ("台北市信義區", {"TW"}),
])
def test_places_in_the_supported_languages(text: str, expected: set[str]) -> None:
    assert {p.country for p in find_places(text)} == expected


@pytest.mark.parametrize("text", ["Jordan Smith, purchasing", "This has led us to ask", "Sydney Brown",
                                  "Thanks, Milan Novak"])
def test_names_and_words_that_look_like_places_are_not_places(text: str) -> None:
    assert find_places(text) == ()


def test_a_long_name_is_one_place_not_its_parts() -> None:
    assert [p.written for p in find_places("المملكة العربية السعودية")] == ["المملكة العربية السعودية"]


def test_a_huge_signature_is_read_only_at_its_start() -> None:
    signature = "Carlos, Sevilla, España\n" + "x " * 500_000 + "\nTokyo, Japan +81 3 1234 5678"
    clues = Clues(None, "", None, "com", True, signature=signature, body="", language=None)
    country = buyer_country(clues)
    assert country.code == "ES" and "Japan" not in country.evidence


def test_a_city_two_countries_share_is_not_evidence() -> None:
    # Guadalajara is in Mexico and in Spain: the buyer who names only it has no country.
    assert find_places("Somos una empresa de construcción en Guadalajara") == ()
