"""Mail relayed by web forms and B2B platforms is attributed to the buyer."""
from __future__ import annotations

from mailrouter.model import FormSender, ParseSettings
from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS, parse_message
from mailrouter.parse.countries import country_code
from mailrouter.parse.forms import find_form_sender, read_fields

SETTINGS = ParseSettings(
    free_mail_domains=DEFAULT_FREE_MAIL_DOMAINS,
    form_senders=(
        FormSender("website", ("noreply@factory.cn",)),
        FormSender("alibaba", ("@alibaba.com",)),
    ),
)


def test_form_sender_matches_exact_address_and_domain_suffix() -> None:
    assert find_form_sender("noreply@factory.cn", SETTINGS.form_senders).name == "website"
    assert find_form_sender("notice@service.alibaba.com", SETTINGS.form_senders).name == "alibaba"
    assert find_form_sender("sales@factory.cn", SETTINGS.form_senders) is None
    assert find_form_sender("x@notalibaba.com", SETTINGS.form_senders) is None


def test_labelled_fields_in_english_and_chinese_with_full_width_colon() -> None:
    fields = read_fields("姓名：Hans Müller\n公司：Acme GmbH\n邮箱： <hans@acme.de>\n国家：德国\n")
    assert (fields.email, fields.company, fields.country, fields.name) == (
        "hans@acme.de", "Acme GmbH", "DE", "Hans Müller")


def test_country_names_and_codes() -> None:
    assert [country_code(c) for c in ("Germany", "deutschland", "DE", "UK", "巴西", "Atlantis")] == [
        "DE", "DE", "DE", "GB", "BR", None]


def test_website_form_with_buyer_in_reply_to() -> None:
    raw = (
        b"From: Website <noreply@factory.cn>\r\nReply-To: Ana Silva <ana@empresa.com.br>\r\n"
        b"To: sales@factory.cn\r\nSubject: New inquiry\r\n\r\n"
        b"Name: Ana Silva\r\nMessage: Gostaria de uma cota\xc3\xa7\xc3\xa3o de v\xc3\xa1lvulas.\r\n"
    )
    inquiry = parse_message(raw, SETTINGS)
    assert inquiry.from_address == "noreply@factory.cn"
    assert (inquiry.sender, inquiry.reply_to, inquiry.via_form) == (
        "ana@empresa.com.br", "ana@empresa.com.br", "website")
    assert (inquiry.domain, inquiry.country) == ("empresa.com.br", "BR")


def test_platform_notification_with_labelled_fields() -> None:
    body = (
        "您收到一条新询盘 / You have a new inquiry\n"
        "Name: Klaus Weber\nE-mail: klaus.weber@gmail.com\n公司: Weber Technik GmbH\n国家：德国\n"
        "Message: Bitte um ein Angebot für Leiterplatten, Menge 1000 Stück.\n"
    ).encode()
    raw = (
        b"From: Alibaba <notice@service.alibaba.com>\r\nReply-To: notice@service.alibaba.com\r\n"
        b"To: sales@factory.cn\r\nSubject: Inquiry\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + body
    )
    inquiry = parse_message(raw, SETTINGS)
    assert inquiry.sender == "klaus.weber@gmail.com"
    assert inquiry.reply_to == "klaus.weber@gmail.com"
    assert (inquiry.company, inquiry.country, inquiry.via_form) == ("Weber Technik GmbH", "DE", "alibaba")
    assert inquiry.sender_name == "Klaus Weber"
    assert inquiry.free_mail is True


def test_ordinary_mail_is_not_a_form() -> None:
    raw = b"From: li@acme.de\r\nSubject: x\r\n\r\nEmail: other@x.com\r\n"
    inquiry = parse_message(raw, SETTINGS)
    assert (inquiry.sender, inquiry.via_form, inquiry.company) == ("li@acme.de", None, None)
