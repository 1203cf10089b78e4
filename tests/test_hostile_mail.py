"""Hostile and odd mail from the review of 2026-12-04 (issue 14): each shape is read as a mail
client reads it, never quarantines an ordinary inquiry, and costs time linear in its size."""
from __future__ import annotations

import base64

import pytest

from mailrouter.model import ParseSettings
from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS, parse_message

SETTINGS = ParseSettings(free_mail_domains=DEFAULT_FREE_MAIL_DOMAINS)
BODY = "Guten Tag, wir bitten um ein Angebot für 500 Ventile aus Edelstahl.\r\n"


def mail(*headers: bytes, body: bytes = BODY.encode()) -> bytes:
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


# -- P5: junk charset labels fall back to detection

@pytest.mark.parametrize("label", ["idna", "undefined", "zip", "base64", "rot13", "hex", "uu", "quopri",
                                   "bz2", "unicode-escape", "punycode"])
def test_a_junk_body_charset_is_decoded_as_undeclared_text(label: str) -> None:
    raw = mail(b"From: buyer@acme.de", b"Subject: RFQ",
               f"Content-Type: text/plain; charset=\"{label}\"".encode())
    assert parse_message(raw, SETTINGS).text == BODY.strip()


@pytest.mark.parametrize("label", ["undefined", "zip", "idna", "base64"])
def test_a_junk_charset_in_an_encoded_subject_or_file_name(label: str) -> None:
    word = f"=?{label}?B?{base64.b64encode('Anfrage Ventile'.encode()).decode()}?="
    name = f"=?{label}?B?{base64.b64encode(b'rfq.pdf').decode()}?="
    body = (b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + BODY.encode()
            + b"--b\r\nContent-Type: application/pdf; name=\"" + name.encode() + b"\"\r\n"
            b"Content-Disposition: attachment\r\n\r\nxx\r\n--b--\r\n")
    raw = mail(b"From: buyer@acme.de", b"Subject: " + word.encode(),
               b"Content-Type: multipart/mixed; boundary=b", body=body)
    inquiry = parse_message(raw, SETTINGS)
    assert inquiry.subject == "Anfrage Ventile"
    assert [a.filename for a in inquiry.attachments] == ["rfq.pdf"]


# -- P7: raw 8-bit text mixed with encoded words

@pytest.mark.parametrize(("header", "expected"), [
    (b"Subject: =?iso-8859-1?Q?Die_Hasen_und_die_Fr\xf6sche?=", "Die Hasen und die Frösche"),
    ("Subject: 询价 =?utf-8?B?5Lu35qC8?=".encode(), "询价 价格"),
    ("Subject: Anfrage für =?utf-8?Q?Ventile?=".encode(), "Anfrage für Ventile"),
    (b"Subject: =?utf-8?q?Anfrage?= =?utf-8?q?_Ventile?=", "Anfrage Ventile"),  # space between words dropped
])
def test_mixed_raw_8bit_and_encoded_words_decode_as_mail_clients_do(header: bytes, expected: str) -> None:
    assert parse_message(mail(b"From: buyer@acme.de", header), SETTINGS).subject == expected


def test_mixed_display_name() -> None:
    raw = mail("From: =?utf-8?B?5byg5LiJ?= 张 <zhang@acme.cn>".encode(), b"Subject: x")
    assert parse_message(raw, SETTINGS).sender_name == "张三 张"


def test_encoded_words_are_found_in_linear_time() -> None:
    """Many unterminated "=?x?q?" openings must not make the decoder rescan the rest each time."""
    raw = mail(b"From: buyer@acme.de", b"Subject: " + b"=?x?q?" * 200_000)
    assert parse_message(raw, SETTINGS).subject.startswith("=?x?q?")


# -- P10: a byte-order mark and obsolete header syntax

def test_a_leading_utf8_bom_is_accepted() -> None:
    raw = b"\xef\xbb\xbf" + mail(b"From: buyer@acme.de", b"Subject: RFQ valves")
    inquiry = parse_message(raw, SETTINGS)
    assert (inquiry.sender, inquiry.subject) == ("buyer@acme.de", "RFQ valves")


def test_obsolete_space_before_the_colon_is_accepted() -> None:
    raw = mail(b"From  : John Doe <jdoe@machine.example>", b"To  : Mary Smith <mary@example.net>",
               b"Subject     : Saying Hello", b"Message-ID  : <1234.5678@local.machine.example>")
    inquiry = parse_message(raw, SETTINGS)
    assert (inquiry.sender, inquiry.subject) == ("jdoe@machine.example", "Saying Hello")
    assert inquiry.message_id == "<1234.5678@local.machine.example>"
