"""parse_message end to end: hostile headers, charsets, damage, attachments."""
from __future__ import annotations

import base64
from datetime import timezone
from email.message import EmailMessage

import mailparser
import pytest

from mailrouter.model import Attachment, ParseSettings
from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS, UnreadableMessage, parse_message

SETTINGS = ParseSettings(free_mail_domains=DEFAULT_FREE_MAIL_DOMAINS)
BODY = b"Guten Tag, wir bitten um ein Angebot fuer Ventile aus Edelstahl.\r\n"


def mail(*headers: bytes, body: bytes = BODY) -> bytes:
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


def no_controls(value: str) -> bool:
    return not any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


def test_encoded_crlf_in_subject_cannot_inject_a_header() -> None:
    raw = mail(b"From: a@acme.de", b"Subject: =?utf-8?q?a=0D=0ABcc:_x@evil?=")
    inquiry = parse_message(raw, SETTINGS)
    assert "\r" not in inquiry.subject and "\n" not in inquiry.subject
    assert inquiry.subject == "a Bcc: x@evil"


def test_all_header_derived_strings_are_single_line() -> None:
    raw = mail(
        b"From: =?utf-8?q?Evil=0D=0AX-Bad:_1?= <a@acme.de>",
        b"Message-ID: =?utf-8?q?<id=0A@x>?=",
        b"Subject: =?utf-8?b?" + base64.b64encode(b"tab\there\x00nul\x1b[31m") + b"?=",
    )
    inquiry = parse_message(raw, SETTINGS)
    for value in (inquiry.subject, inquiry.sender_name, inquiry.message_id, *inquiry.headers.values()):
        assert no_controls(value), value


@pytest.mark.parametrize("charset", [b"x-gbk", b"windows-936", b"gb2312"])
def test_chinese_subject_in_nonstandard_charset_labels(charset: bytes) -> None:
    encoded = base64.b64encode("询价单".encode("gbk"))
    raw = mail(b"From: a@acme.cn", b"Subject: =?" + charset + b"?b?" + encoded + b"?=")
    assert parse_message(raw, SETTINGS).subject == "询价单"


def test_unknown_charset_is_replaced_not_fatal() -> None:
    raw = mail(b"From: a@acme.de", b"Subject: =?x-nonsense?q?caf=E9?=")
    assert parse_message(raw, SETTINGS).subject.startswith("caf")


def test_raw_8bit_gbk_subject_is_decoded() -> None:
    raw = mail(b"From: a@acme.cn", "Subject: 报价请求".encode("gbk"))
    assert parse_message(raw, SETTINGS).subject == "报价请求"


def test_undisclosed_recipients_group_and_recipient_order() -> None:
    raw = mail(
        b"From: a@acme.de", b"To: undisclosed-recipients:;", b"Cc: Sales <SALES@factory.cn>, b@x.com",
        b"Delivered-To: sales@factory.cn", b"X-Original-To: info@factory.cn",
    )
    assert parse_message(raw, SETTINGS).recipients == ("sales@factory.cn", "b@x.com", "info@factory.cn")


def test_missing_from_still_parses() -> None:
    inquiry = parse_message(mail(b"To: sales@factory.cn", b"Subject: hi"), SETTINGS)
    assert (inquiry.from_address, inquiry.sender, inquiry.domain) == ("", "", "")
    assert inquiry.country_source in (None, "language")  # no address: at most the language's hint


def test_missing_from_falls_back_to_sender_header() -> None:
    inquiry = parse_message(mail(b"Sender: Bob <bob@acme.de>", b"Subject: hi"), SETTINGS)
    assert (inquiry.from_address, inquiry.sender, inquiry.domain) == ("", "bob@acme.de", "acme.de")


def test_multiple_from_headers_take_the_first() -> None:
    raw = mail(b"From: First <first@acme.de>", b"From: second@other.com")
    inquiry = parse_message(raw, SETTINGS)
    assert (inquiry.sender, inquiry.sender_name) == ("first@acme.de", "First")


def test_overlong_subject_is_truncated() -> None:
    raw = mail(b"From: a@acme.de", b"Subject: " + b"x" * 20_000)
    assert 400 <= len(parse_message(raw, SETTINGS).subject) <= 500


def test_message_id_date_headers_and_content_type() -> None:
    raw = mail(
        b"From: a@acme.de", b"Message-ID:  <abc@acme.de> ", b"Date: Mon, 3 Mar 2025 10:00:00 +0100",
        b"Auto-Submitted: auto-replied", b"Precedence: bulk", b"X-Mailrouter: forwarded",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b",
        body=b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--b--\r\n",
    )
    inquiry = parse_message(raw, SETTINGS)
    assert inquiry.message_id == "<abc@acme.de>"
    assert inquiry.date is not None and inquiry.date.utcoffset() is not None
    assert inquiry.headers["auto-submitted"] == "auto-replied"
    assert inquiry.headers["precedence"] == "bulk"
    assert inquiry.headers["x-mailrouter"] == "forwarded"
    assert inquiry.content_type == "multipart/report"


def test_unknown_zone_and_bad_dates() -> None:
    zoneless = parse_message(mail(b"From: a@b.de", b"Date: Mon, 3 Mar 2025 10:00:00 -0000"), SETTINGS)
    assert zoneless.date is not None and zoneless.date.tzinfo == timezone.utc
    assert parse_message(mail(b"From: a@b.de", b"Date: yesterday-ish"), SETTINGS).date is None
    assert parse_message(mail(b"From: a@b.de"), SETTINGS).message_id == ""


@pytest.mark.parametrize(
    "raw", [b"", b"   \r\n", b"\x00\xff\xfe\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, b"just some text\n"]
)
def test_bytes_that_are_not_mail_are_unreadable(raw: bytes) -> None:
    with pytest.raises(UnreadableMessage) as caught:
        parse_message(raw, SETTINGS)
    assert caught.value.reason


def test_headers_with_damaged_body_still_parse() -> None:
    raw = mail(b"From: a@acme.de", b"Content-Type: multipart/mixed; boundary=zz", body=b"\xff\xfe no parts")
    assert parse_message(raw, SETTINGS).sender == "a@acme.de"


def test_stdlib_fallback_when_mail_parser_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_raw: bytes) -> None:
        raise RecursionError("too deep")

    monkeypatch.setattr(mailparser, "parse_from_bytes", broken)
    inquiry = parse_message(mail(b"From: a@acme.de", b"Subject: hi"), SETTINGS)
    assert (inquiry.sender, inquiry.language) == ("a@acme.de", "de")


def test_html_only_body_becomes_text() -> None:
    raw = mail(
        b"From: a@acme.fr", b"Content-Type: text/html; charset=utf-8",
        body="<p>Bonjour, merci de nous envoyer une offre pour des vannes.</p>".encode(),
    )
    inquiry = parse_message(raw, SETTINGS)
    assert inquiry.text.startswith("Bonjour") and inquiry.language == "fr"


def test_signature_is_split_off() -> None:
    body = b"Please quote 500 valves.\r\n\r\nBest regards,\r\nJohn Smith\r\nAcme Ltd\r\n+44 20 1234 5678\r\n"
    inquiry = parse_message(mail(b"From: john@acme.co.uk", body=body), SETTINGS)
    assert inquiry.text == "Please quote 500 valves."
    assert "+44 20 1234 5678" in inquiry.signature


def _with_attachments() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Hans <hans@acme.de>"
    msg["Subject"] = "Zeichnung"
    msg.set_content("Anbei die Zeichnung für das Angebot, bitte prüfen Sie die Maße.")
    msg.add_related(b"\x89PNG fake", maintype="image", subtype="png", cid="<logo>")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="Zeichnung_Ä.pdf")
    msg.add_attachment(b"x" * (3 * 1024 * 1024), maintype="application", subtype="zip", filename="big.zip")
    return msg


def test_attachments_with_rfc2231_names_and_no_unnamed_inline_images() -> None:
    inquiry = parse_message(_with_attachments().as_bytes(), SETTINGS)
    assert inquiry.attachments == (
        Attachment("Zeichnung_Ä.pdf", "application/pdf", 13),
        Attachment("big.zip", "application/zip", 3 * 1024 * 1024),
    )
    assert inquiry.language == "de"


def test_named_inline_image_is_an_attachment_and_paths_are_stripped() -> None:
    body = (
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee picture\r\n"
        b"--b\r\nContent-Type: image/jpeg\r\nContent-Disposition: inline; filename=\"../../photo.jpg\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n--b--\r\n"
    )
    raw = mail(b"From: a@acme.de", b"Content-Type: multipart/mixed; boundary=b", body=body)
    (attachment,) = parse_message(raw, SETTINGS).attachments
    assert (attachment.filename, attachment.content_type) == ("photo.jpg", "image/jpeg")


def test_rfc2047_encoded_attachment_name() -> None:
    body = (
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--b\r\nContent-Type: application/pdf; name=\"=?utf-8?b?5oql5Lu35Y2VLnBkZg==?=\"\r\n"
        b"Content-Disposition: attachment\r\n\r\nxx\r\n--b--\r\n"
    )
    raw = mail(b"From: a@acme.de", b"Content-Type: multipart/mixed; boundary=b", body=body)
    assert parse_message(raw, SETTINGS).attachments[0].filename == "报价单.pdf"


def test_gbk_body_with_x_gbk_label() -> None:
    body = "您好，我们需要五百块线路板的报价，请尽快回复。".encode("gbk")
    raw = mail(b"From: a@acme.cn", b"Content-Type: text/plain; charset=x-gbk", body=body)
    inquiry = parse_message(raw, SETTINGS)
    assert inquiry.text.startswith("您好") and inquiry.language == "zh"


def test_forwarded_message_is_an_attachment_not_body() -> None:
    inner = b"From: x@y.com\r\nSubject: old\r\n\r\nOld English text that should not count.\r\n"
    body = (
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + BODY
        + b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--b--\r\n"
    )
    raw = mail(b"From: a@acme.de", b"Content-Type: multipart/mixed; boundary=b", body=body)
    inquiry = parse_message(raw, SETTINGS)
    assert "Old English" not in inquiry.text
    assert [a.content_type for a in inquiry.attachments] == ["message/rfc822"]


def test_raw_8bit_utf8_display_name() -> None:
    raw = mail("From: Jürgen Groß <JG@acme.de>".encode(), b"Subject: x")
    inquiry = parse_message(raw, SETTINGS)
    assert (inquiry.sender_name, inquiry.sender) == ("Jürgen Groß", "jg@acme.de")


def test_encoded_newline_in_address_is_not_accepted_as_an_address() -> None:
    raw = mail(b"From: =?utf-8?q?a=0A@evil.com?=", b"Reply-To: b@acme.de")
    inquiry = parse_message(raw, SETTINGS)
    assert inquiry.from_address == "" and no_controls(inquiry.sender)


def test_big_messages_are_read_without_decoding_attachments_and_sizes_stay_exact():
    from mailrouter.model import ParseSettings
    from mailrouter.parse.message import MAIL_PARSER_LIMIT
    from mailrouter.testing.samples import GERMAN, compose

    settings = ParseSettings(free_mail_domains=frozenset())
    for size in (0, 1, 2, 3, 20_002, MAIL_PARSER_LIMIT + 1):
        raw = compose("Klaus <k@becker.de>", "Anfrage", GERMAN, attachment=("drawing.pdf", b"%" * size), n=1)
        q = parse_message(raw, settings)
        assert [(a.filename, a.size) for a in q.attachments] == [("drawing.pdf", size)]
        assert q.language == "de" and "Leiterplatten" in q.text
