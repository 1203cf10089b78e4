"""The chunked scan of a big message gives what the whole-bytes functions give."""
from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import replace
from email.message import EmailMessage
from email.policy import SMTP

import pytest

from mailrouter.intake.fingerprint import content_key
from mailrouter.act.forward import raw_transfer_encoding
from mailrouter.model import Attachment, ParseSettings
from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS, parse_message
from mailrouter.parse.stream import MimeReducer, reduce_message
from mailrouter.intake.spool import scan

SETTINGS = ParseSettings(free_mail_domains=DEFAULT_FREE_MAIL_DOMAINS)
GERMAN = ("Sehr geehrte Damen und Herren,\n\nwir bitten um ein Angebot für 5000 Leiterplatten, "
          "vierlagig, FR4, 1,6 mm, HASL bleifrei. Liefertermin KW 32.\n\nMit freundlichen Grüßen\n"
          "Hans Müller\nEinkauf, Buyer GmbH\n")
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 400  # ~100 KB, base64 in the message


def simple(line_end: bytes = b"\r\n", trailer: bytes = b"") -> bytes:
    lines = [b"Return-Path: <hans@buyer.de>", b"From: Hans Mueller <hans@buyer.de>",
             b"To: sales@example.com", b"Subject: Anfrage Leiterplatten", b"  5000 Stueck",
             b"Message-ID: <q1@buyer.de>", b"Date: Mon, 06 May 2024 03:00:00 +0200",
             b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: 8bit", b"",
             *GERMAN.encode().split(b"\n")]
    return line_end.join(lines) + trailer


def nested() -> bytes:
    """mixed > (alternative > plain, html), PDF, an attached message with its own multipart, image."""
    inner = EmailMessage()
    inner["From"], inner["Subject"] = "old@buyer.de", "our earlier order"
    inner.set_content("the earlier order, quoted in full\n" * 50)
    inner.add_attachment(b"\x89PNG" + bytes(5000), maintype="image", subtype="png", filename="logo.png")
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Hans Müller <hans@buyer.de>"
    msg["To"] = "sales@example.com"
    msg["Subject"] = "Anfrage: Ventile aus Edelstahl"
    msg["Message-ID"] = "<n1@buyer.de>"
    msg.set_content(GERMAN)
    msg.add_alternative(f"<html><body><p>{GERMAN}</p></body></html>", subtype="html")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="Zeichnung 4711.pdf")
    msg.add_attachment(inner)
    msg.add_attachment(bytes(3000), maintype="image", subtype="jpeg", disposition="inline")
    return msg.as_bytes()


def html_only_gb18030() -> bytes:
    body = base64.encodebytes("<p>您好，请报价 LED 面板 500 件。谢谢！</p>".encode("gb18030"))
    return (b"From: =?gb2312?b?1cXI/Q==?= <zhang@buyer.cn>\r\nTo: sales@example.com\r\n"
            b"Subject: =?utf-8?b?6K+i5Lu3?=\r\nContent-Type: text/html; charset=gb2312\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + body.replace(b"\n", b"\r\n"))


MESSAGES = {
    "crlf": simple(),
    "lf": simple(b"\n"),
    "trailing white space and blank lines": simple(b"\r\n", b"  \t\r\n\r\n \r\n\r\n"),
    "no final line end": simple(b"\r\n", b"last words"),
    "nested multipart": nested(),
    "nested multipart, lf": nested().replace(b"\r\n", b"\n"),
    "html only, base64 gb18030": html_only_gb18030(),
}
CHUNK_SIZES = [1, 3, 7, 64, 1000, 1 << 20]


def chunked(raw: bytes, size: int) -> list[bytes]:
    return [raw[i:i + size] for i in range(0, len(raw), size)]


def reduced(raw: bytes, size: int):
    reducer = MimeReducer()
    for chunk in chunked(raw, size):
        reducer.feed(chunk)
    return reducer.close()


@pytest.mark.parametrize("size", CHUNK_SIZES)
@pytest.mark.parametrize("name", MESSAGES)
def test_scan_gives_the_whole_bytes_identities(name: str, size: int) -> None:
    raw = MESSAGES[name]
    got = scan(chunked(raw, size))
    assert got.size == len(raw)
    assert got.sha256 == hashlib.sha256(raw).hexdigest()
    assert got.content_key == content_key(raw)
    assert got.transfer_encoding == raw_transfer_encoding(raw)


@pytest.mark.parametrize("raw", [b"", b"\r\n", b"\n\nbody", b"From: a@b.c", b"From: a@b.c\r",
                                 b"Subject: x\r\n \r\n\tfolded\r\n\r\n\r\n", b"To: x\n\r\nbody  \r\n\r\n"])
def test_content_key_of_odd_shapes(raw: bytes) -> None:
    for size in (1, 2, 5):
        assert scan(chunked(raw, size)).content_key == content_key(raw), size


def test_content_key_ignores_line_ends_and_trailing_space_like_the_whole_function() -> None:
    assert scan([simple()]).content_key == scan([simple(b"\n", b"  \n\n")]).content_key == content_key(simple())


@pytest.mark.parametrize("raw, cte", [
    (b"a\r\nb\r\n", "7bit"), (b"\xc3\xa4\n", "8bit"), (b"a\rb", "binary"), (b"a\0", "binary"),
    (b"x" * 998 + b"\r\n", "7bit"), (b"x" * 999 + b"\r\n", "binary"), (b"ok\r", "binary"),
])
def test_transfer_encoding_across_chunks(raw: bytes, cte: str) -> None:
    for size in (1, 2, 500):
        assert scan(chunked(raw, size)).transfer_encoding == cte == raw_transfer_encoding(raw)


@pytest.mark.parametrize("size", CHUNK_SIZES)
@pytest.mark.parametrize("name", MESSAGES)
def test_reduced_message_parses_like_the_whole(name: str, size: int) -> None:
    raw = MESSAGES[name]
    whole = parse_message(raw, SETTINGS)
    red = reduced(raw, size)
    assert red.message == reduce_message(raw).message
    got = replace(parse_message(red.message, SETTINGS), attachments=red.attachments)
    assert (got.sender, got.subject, got.text, got.language) == (whole.sender, whole.subject, whole.text,
                                                                 whole.language)
    assert [(a.filename, a.content_type) for a in got.attachments] == \
        [(a.filename, a.content_type) for a in whole.attachments]
    assert replace(got, attachments=()) == replace(whole, attachments=())


def test_nested_multipart_keeps_text_and_drops_attachment_bodies() -> None:
    raw = nested()
    red = reduce_message(raw)
    whole = parse_message(raw, SETTINGS)
    assert len(red.message) < len(raw) // 10
    assert b"quoted in full" not in red.message  # the attached message's body is dropped
    assert base64.encodebytes(PDF)[:76] not in red.message
    assert [a.filename for a in red.attachments] == ["Zeichnung 4711.pdf", ""] == \
        [a.filename for a in whole.attachments]  # an unnamed inline image is no attachment
    assert [a.content_type for a in red.attachments] == ["application/pdf", "message/rfc822"]
    pdf = red.attachments[0]
    assert pdf.size == len(PDF) == whole.attachments[0].size  # base64: exact from the encoded text
    assert abs(red.attachments[1].size - whole.attachments[1].size) < 200  # an attached message: its length


def test_a_boundary_line_split_across_chunks_is_still_a_boundary() -> None:
    raw = nested()
    boundary = raw.rindex(b"\n--", 0, raw.index(b"Content-Type: application/pdf")) + 1  # the PDF's
    for cut in range(boundary - 1, boundary + 12):
        red = reduced_at(raw, cut)
        assert red == reduce_message(raw), cut


def reduced_at(raw: bytes, cut: int):
    reducer = MimeReducer()
    reducer.feed(raw[:cut])
    reducer.feed(raw[cut:])
    return reducer.close()


def test_boundaries_of_an_outer_multipart_end_an_unclosed_inner_one() -> None:
    raw = (b"From: a@acme.de\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\n"
           b"--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
           b"--in\r\nContent-Type: text/plain\r\n\r\nhello there\r\n"
           b"--out\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"QUJD\r\n--out--\r\n")
    whole, red = parse_message(raw, SETTINGS), reduce_message(raw)
    assert red.attachments == (Attachment("a.pdf", "application/pdf", 3),) and whole.attachments == red.attachments
    assert parse_message(red.message, SETTINGS).text == whole.text == "hello there"


def test_text_is_kept_up_to_the_budget() -> None:
    raw = simple(b"\r\n", b"\r\n" + b"more words in a very long letter\r\n" * 100)
    red = reduce_message(raw, text_budget=500)
    assert len(red.message) < len(raw) and b"Anfrage" in red.message
    assert parse_message(red.message, SETTINGS).text.startswith(parse_message(raw, SETTINGS).text[:200])


def test_a_long_line_without_line_end_is_passed_on_in_pieces() -> None:
    raw = simple() + b"\r\n" + b"x" * 200_000 + b"\r\nend\r\n"
    red = reduced(raw, 1 << 20)
    assert red == reduce_message(raw)
    assert parse_message(red.message, SETTINGS).subject == parse_message(raw, SETTINGS).subject


@pytest.mark.parametrize("cut", range(0, 8))
def test_the_boundary_prefix_is_noticed_across_chunks(cut: int) -> None:
    raw = b"Subject: x\r\n\r\nbody =_mr_0123 more\r\n"
    at = raw.index(b"=_mr_") + cut - 2
    assert scan([raw[:at], raw[at:]]).has_boundary_prefix
    assert not scan([simple()]).has_boundary_prefix


def test_identities_on_random_messages_and_splits() -> None:
    rnd = random.Random(11)
    pieces = [b"a", b" ", b"\t", b"\x0b", b"\r", b"\n", b"\r\n", b"\n\n", b"\r\n\r\n", b"From: x", b"to: y",
              b"Subject:", b" folded", b"Message-ID: <m>", b"\0", b"\xc3\xa4", b"x" * 999]
    for _ in range(3000):
        raw = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 25)))
        cuts = sorted(rnd.randint(0, len(raw)) for _ in range(rnd.randint(0, 6)))
        got = scan(raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)]))
        assert (got.content_key, got.transfer_encoding) == (content_key(raw), raw_transfer_encoding(raw)), raw


@pytest.mark.parametrize("chunk", [1 << 20, 4096, 7])
def test_a_field_over_its_budget_does_not_end_the_header_block(chunk: int) -> None:
    """A Subject folded into 50,000 continuation lines (the hostile set has one) is cut at
    FIELD_BUDGET; the lines past it used to be kept as empty lines, which end a header block:
    the Message-ID and Content-Type below it fell into the body (a spooled forward lost its
    In-Reply-To, a multipart its parts)."""
    fold = b"".join(b"\r\n chunk %05d of a very long subject" % i for i in range(50_000))
    raw = (b"From: Buyer <buyer@acme.de>\r\nTo: sales@example.com\r\nSubject: Anfrage" + fold +
           b"\r\nMessage-ID: <long-subject@acme.de>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
           b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nWir brauchen 500 Leiterplatten.\r\n"
           b"--b1\r\nContent-Type: application/pdf; name=z.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"QUJD\r\n--b1--\r\n")
    reducer = MimeReducer()
    for at in range(0, len(raw), chunk):
        reducer.feed(raw[at:at + chunk])
    red = reducer.close()
    head = red.message.split(b"\n\n", 1)[0]
    assert b"Message-ID: <long-subject@acme.de>" in head
    assert len(head) < 300 << 10  # still cut at the budget
    parsed = parse_message(red.message, SETTINGS)
    assert parsed.message_id == "<long-subject@acme.de>"
    assert parsed.text.startswith("Wir brauchen 500 Leiterplatten")
    assert red.attachments == (Attachment("z.pdf", "application/pdf", 3),)
