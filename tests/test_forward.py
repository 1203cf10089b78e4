from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

from email.header import decode_header, make_header

import jinja2
import mailparser
import pytest

from mailrouter.act.forward import (
    ForwardError,
    ForwardSpec,
    build_forward,
    choose_boundary,
    clean_header_text,
    forward_frame,
    raw_transfer_encoding,
    tag_subject,
)
from mailrouter.marker import forgery
from mailrouter.model import ROUTER_HEADER, Attachment, Decision, Inquiry, Outcome
from mailrouter.act.templating import candidate_languages, filesize, make_environment, render
from tests.factories import hans_inquiry

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
NOW = datetime(2024, 5, 6, 9, 30, tzinfo=timezone(timedelta(hours=8)))
FORMAT = "[{country}][{products}] {subject}"

RAW_CRLF = (
    b"Return-Path: <hans@buyer.de>\r\n"
    b"From: =?utf-8?q?Hans_M=C3=BCller?= <hans@buyer.de>\r\n"
    b"To: sales@example.com\r\n"
    b"Subject: Inquiry: LED panels\r\n"
    b"Message-ID: <q1@buyer.de>\r\n"
    b"Date: Mon, 06 May 2024 03:00:00 +0200\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe, please quote 500 pcs.\r\n"
    b"--\r\n"
    b"Hans\r\n"
)


def make_inquiry(**overrides: object) -> Inquiry:
    """tests.factories.hans_inquiry with this file's defaults."""
    return hans_inquiry(**{**dict(
        subject="Inquiry: LED panels",
        text="Grüße, please quote 500 pcs.",
        signature="Hans",
        language_confidence=0.97,
        products=("LED", "PCB"),
        attachments=(Attachment("spec.pdf", "application/pdf", 123_456),),
        company="Buyer GmbH",
    ), **overrides})


DECISION = Decision(Outcome.ROUTED, "country DE -> team Europe", rule="europe", rep="zhang")


def make_spec(**overrides: object) -> ForwardSpec:
    base = ForwardSpec(
        shared_address="sales@example.com",
        shared_name="Sales Inbox",
        rep_address="zhang@example.com",
        rep_name="Zhang Wei",
        message_id="<fwd.q1@mailrouter.example.com>",
        subject="[DE][LED/PCB] Inquiry: LED panels",
    )
    return replace(base, **overrides)


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    return make_environment(TEMPLATES)


def forward(env: jinja2.Environment, raw: bytes = RAW_CRLF, inquiry: Inquiry | None = None,
            **spec: object) -> bytes:
    return build_forward(raw, inquiry or make_inquiry(), DECISION, make_spec(**spec), env, NOW)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def body_part(message: EmailMessage, content_type: str) -> EmailMessage:
    return next(part for part in message.walk() if part.get_content_type() == content_type)


def embedded_original(data: bytes) -> bytes:
    """The rfc822 part's bytes exactly as they sit in the forward, cut out by its boundary."""
    boundary = parse(data).get_boundary()
    assert boundary
    delimiter = b"\r\n--" + boundary.encode()
    last_part = data.split(delimiter)[-2]
    headers, _, body = last_part.partition(b"\r\n\r\n")
    assert b"Content-Type: message/rfc822" in headers
    return body


# --- tag_subject -----------------------------------------------------------------------------

def test_tag_subject_fills_the_fields() -> None:
    assert tag_subject(FORMAT, make_inquiry(), DECISION) == "[DE][LED/PCB] Inquiry: LED panels"


def test_tag_subject_drops_empty_fields_with_their_brackets() -> None:
    inquiry = make_inquiry(country=None, products=())
    assert tag_subject(FORMAT, inquiry, DECISION) == "Inquiry: LED panels"
    assert tag_subject("({country}) 【{products}】 {subject}", inquiry, DECISION) == "Inquiry: LED panels"


def test_tag_subject_keeps_brackets_that_belong_to_the_buyer_subject() -> None:
    inquiry = make_inquiry(country=None, subject="Price for [] brackets")
    assert tag_subject(FORMAT, inquiry, DECISION) == "[LED/PCB] Price for [] brackets"


def test_tag_subject_is_one_line_and_capped() -> None:
    inquiry = make_inquiry(subject="Hi\r\nBcc: evil@x\t" + "long " * 100)
    subject = tag_subject(FORMAT, inquiry, DECISION, max_length=80)
    assert "\r" not in subject and "\n" not in subject and "\t" not in subject
    assert subject.startswith("[DE][LED/PCB] Hi Bcc: evil@x long")
    assert len(subject) <= 80 and subject.endswith("…")


def test_tag_subject_rejects_an_unknown_field() -> None:
    with pytest.raises(ValueError, match="unknown field {price}"):
        tag_subject("[{price}] {subject}", make_inquiry(), DECISION)


def test_tag_subject_with_nothing_at_all() -> None:
    inquiry = make_inquiry(country=None, products=(), subject="")
    assert tag_subject(FORMAT, inquiry, DECISION) == "(no subject)"


# --- headers ---------------------------------------------------------------------------------

def test_forward_headers(env: jinja2.Environment) -> None:
    message = parse(forward(env))
    assert message["From"].addresses[0].display_name == "Hans Müller via Sales Inbox"
    assert message["From"].addresses[0].addr_spec == "sales@example.com"
    assert str(message["To"]) == "Zhang Wei <zhang@example.com>"
    assert str(message["Reply-To"]) == "Hans Müller <hans@buyer.de>"
    assert message["Subject"] == "[DE][LED/PCB] Inquiry: LED panels"
    assert message["Date"].datetime == NOW
    assert message["Date"].endswith("+0800")
    assert message["Message-ID"] == "<fwd.q1@mailrouter.example.com>"
    assert message["In-Reply-To"] == "<q1@buyer.de>"
    assert message["References"] == "<q1@buyer.de>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message[ROUTER_HEADER].startswith("forward; rule=europe; rep=zhang; sig=")
    assert forgery(b"", message["Message-ID"], message[ROUTER_HEADER]) is None  # make_spec signs with b""
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/mixed"


def test_reply_to_prefers_the_buyers_reply_to_address(env: jinja2.Environment) -> None:
    inquiry = make_inquiry(reply_to="purchasing@buyer.de")
    message = parse(forward(env, inquiry=inquiry))
    assert message["Reply-To"].addresses[0].addr_spec == "purchasing@buyer.de"


def test_no_threading_headers_without_an_original_message_id(env: jinja2.Environment) -> None:
    message = parse(forward(env, inquiry=make_inquiry(message_id="")))
    assert "In-Reply-To" not in message and "References" not in message


def test_chinese_name_and_subject_are_rfc2047_encoded(env: jinja2.Environment) -> None:
    inquiry = make_inquiry(sender_name="张伟", subject="询价：LED面板")
    data = forward(env, inquiry=inquiry, subject="[CN][LED] 询价：LED面板")
    assert header_block(data).isascii()
    message = parse(data)
    assert message["Reply-To"].addresses[0].display_name == "张伟"
    assert message["Subject"] == "[CN][LED] 询价：LED面板"


@pytest.mark.parametrize(("name", "subject"), [
    ("Dr. Hans \"Hansi\" Müller, GmbH & Co. (Einkauf)", "Angebot " * 40),
    ("张伟" * 60, "询价：LED面板 " * 30),
    ("O'Brien; Sales <Dept>", "x" * 300),  # one word longer than a line: kept whole, still valid
])
def test_long_and_special_header_text_round_trips(env: jinja2.Environment, name: str, subject: str) -> None:
    data = forward(env, inquiry=make_inquiry(sender_name=name), subject=subject.strip())
    head = header_block(data)
    assert head.isascii()
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if b"x" * 100 not in line)
    message = parse(data)
    assert message["Reply-To"].addresses[0].addr_spec == "hans@buyer.de"
    assert message["Subject"] == subject.strip()
    # RFC 2047 6.2: white space between encoded-words is not text (Python's address parser
    # keeps it, mail clients do not), so the name is decoded as a client would.
    raw_reply_to = re.search(rb"\r\nReply-To: (.*?) <hans@buyer\.de>\r\n", head + b"\r\n", re.S)[1].decode()
    decoded = str(make_header(decode_header(raw_reply_to.replace("\r\n", ""))))
    assert decoded.strip('"').replace('\\"', '"') == name


def test_idn_buyer_domain_becomes_punycode(env: jinja2.Environment) -> None:
    message = parse(forward(env, inquiry=make_inquiry(reply_to="info@bücher.de")))
    assert message["Reply-To"].addresses[0].addr_spec == "info@xn--bcher-kva.de"


EXPECTED_HEADERS = {
    "from", "to", "reply-to", "subject", "date", "message-id", "auto-submitted",
    "x-auto-response-suppress", ROUTER_HEADER.lower(), "mime-version", "content-type",
    "content-transfer-encoding",
}


def test_hostile_header_text_cannot_inject_headers(env: jinja2.Environment) -> None:
    inquiry = make_inquiry(
        sender_name='Evil\r\nBcc: evil@x\r\n',
        subject="Quote\r\nBcc: evil@x",
        message_id="<q1@buyer.de>\r\nBcc: evil@x",
        company="ACME\nBcc: evil@x",
    )
    data = forward(env, inquiry=inquiry, subject="Quote\r\nBcc: evil@x\nX-Evil: 1",
                   rep_name="Zhang\rBcc: evil@x")
    message = parse(data)
    assert {name.lower() for name in message.keys()} == EXPECTED_HEADERS
    assert not re.search(rb"^(Bcc|X-Evil):", header_block(data), re.MULTILINE | re.IGNORECASE)
    assert message["Subject"] == "Quote Bcc: evil@x X-Evil: 1"
    assert message["Reply-To"].addresses[0].display_name == "Evil Bcc: evil@x"
    assert message["Reply-To"].addresses[0].addr_spec == "hans@buyer.de"
    assert message["To"].addresses[0].addr_spec == "zhang@example.com"
    assert message.defects == []


def test_forward_message_id_must_be_well_formed(env: jinja2.Environment) -> None:
    with pytest.raises(ValueError, match="message_id"):
        forward(env, message_id="<a@b>\r\nBcc: evil@x")


def test_naive_datetime_is_refused(env: jinja2.Environment) -> None:
    with pytest.raises(ValueError, match="timezone"):
        build_forward(RAW_CRLF, make_inquiry(), DECISION, make_spec(), env, datetime(2024, 5, 6))


@pytest.mark.parametrize("address", ["", "not-an-address", "张伟@buyer.de"])
def test_unusable_buyer_address_is_an_error(env: jinja2.Environment, address: str) -> None:
    with pytest.raises(ForwardError):
        forward(env, inquiry=make_inquiry(reply_to="", sender=address))


def test_clean_header_text() -> None:
    assert clean_header_text(" a\r\n b\x00c\x7f\u2028d\x85e\ud800 ") == "a b c d e\ufffd"


# --- body --------------------------------------------------------------------------------------

def test_body_structure(env: jinja2.Environment) -> None:
    message = parse(forward(env))
    types = [part.get_content_type() for part in message.walk()]
    assert types[:5] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "message/rfc822",
    ]
    original = body_part(message, "message/rfc822")
    assert original.get_filename() == "original.eml"
    assert original.get_content_disposition() == "attachment"


def test_routing_block_in_english(env: jinja2.Environment) -> None:
    message = parse(forward(env, extra={"Score": "0.93"}))
    text = body_part(message, "text/plain").get_content()
    assert "Reply to this message to answer Hans Müller directly." in text
    for line in ("Company:     Buyer GmbH", "Country:     Germany", "Language:    German",
                 "Products:    LED, PCB", "Rule:        europe",
                 "Reason:      country DE -> team Europe", "Received at: sales@example.com",
                 "Score:       0.93", "  - spec.pdf (120.6 KB)"):
        assert line in text.splitlines(), line
    assert text.index("Grüße, please quote 500 pcs.") < text.index("Company:")


def test_chinese_template_renders_chinese(env: jinja2.Environment) -> None:
    message = parse(forward(env, language="zh"))
    text = body_part(message, "text/plain").get_content()
    html = body_part(message, "text/html").get_content()
    assert "直接回复本邮件即可回复 Hans Müller。" in text
    assert "产品线：LED、PCB" in text and "国家/地区：德国" in text and "语言：德语" in text
    assert "直接回复本邮件即可回复 Hans Müller。" in html
    assert 'lang="zh-CN"' in html


def test_unknown_template_language_falls_back_to_english(env: jinja2.Environment) -> None:
    text = body_part(parse(forward(env, language="fr")), "text/plain").get_content()
    assert text.startswith("---------- Forwarded message ----------")


def test_html_escapes_the_buyers_text(env: jinja2.Environment) -> None:
    inquiry = make_inquiry(text="Hi <script>alert(1)</script> & bye", sender_name="<b>Hans</b>")
    message = parse(forward(env, inquiry=inquiry))
    html = body_part(message, "text/html").get_content()
    assert "<script>" not in html and "<b>Hans" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; bye" in html
    # The plain-text part shows the buyer's text as written.
    assert "<script>alert(1)</script>" in body_part(message, "text/plain").get_content()


def test_inquiry_without_attachments_or_company(env: jinja2.Environment) -> None:
    inquiry = make_inquiry(attachments=(), company=None, country=None, language=None, products=())
    text = body_part(parse(forward(env, inquiry=inquiry)), "text/plain").get_content()
    assert "Attachments: none" in text and "Company:" not in text
    assert "Country:     unknown" in text and "Products:    none recognised" in text


# --- the original, byte for byte ---------------------------------------------------------------

def test_original_is_embedded_unchanged(env: jinja2.Environment) -> None:
    data = forward(env)
    assert embedded_original(data) == RAW_CRLF
    original = body_part(parse(data), "message/rfc822")
    assert original["Content-Transfer-Encoding"] == "8bit"
    # The email package sees the same message (compat32 keeps header lines as they were).
    inner = original.get_payload(0)
    assert inner.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n")) == RAW_CRLF


def test_lf_only_original_keeps_its_line_endings(env: jinja2.Environment) -> None:
    raw = RAW_CRLF.replace(b"\r\n", b"\n")
    data = forward(env, raw=raw)
    assert embedded_original(data) == raw
    # Everything the router wrote is CRLF; only the original's own bytes may use bare LF.
    assert not re.search(rb"(?<!\r)\n", data.replace(raw, b""))
    inner = body_part(parse(data), "message/rfc822").get_payload(0)
    assert inner.as_bytes(policy=email.policy.compat32) == raw


def test_everything_outside_the_original_is_crlf_and_short(env: jinja2.Environment) -> None:
    data = forward(env, language="zh")
    outside = data.replace(RAW_CRLF, b"")
    assert not re.search(rb"(?<!\r)\n|\r(?!\n)", outside)
    assert max(len(line) for line in outside.split(b"\r\n")) <= 78
    assert outside.isascii()  # our own parts are quoted-printable/base64


@pytest.mark.parametrize(
    ("raw", "cte"),
    [
        (b"Subject: a\r\n\r\nplain ascii\r\n", "7bit"),
        (b"Subject: a\n\nplain ascii\n", "7bit"),
        ("Subject: a\r\n\r\n中文\r\n".encode(), "8bit"),
        (b"Subject: a\r\n\r\n" + b"x" * 998 + b"\r\n", "7bit"),
        (b"Subject: a\r\n\r\n" + b"x" * 999 + b"\r\n", "binary"),
        (b"Subject: a\r\n\r\nnul\x00\r\n", "binary"),
        (b"Subject: a\r\n\r\nbare\rcr\r\n", "binary"),
    ],
)
def test_raw_transfer_encoding(raw: bytes, cte: str) -> None:
    assert raw_transfer_encoding(raw) == cte


@pytest.mark.parametrize("raw", [
    b"Subject: long\r\n\r\n" + "长".encode() * 400 + b"\r\n",  # a 1,200-octet line
    b"Subject: nul\r\n\r\nnul\x00here\r\n",
    b"Subject: cr\r\n\r\nbare\rcr\r\n",
])
def test_binary_original_is_wrapped_in_base64_and_recoverable(env: jinja2.Environment, raw: bytes) -> None:
    """Review P6: a server enforcing RFC 5321 refused such forwards ("500 Line too long");
    binary over DATA is not allowed at all. Base64 keeps every line short and the bytes exact."""
    data = forward(env, raw=raw)
    assert base64.b64decode(embedded_original(data)) == raw
    assert body_part(parse(data), "message/rfc822")["Content-Transfer-Encoding"] == "base64"
    assert parse(data)["Content-Transfer-Encoding"] == "7bit"
    assert data.isascii() and max(len(line) for line in data.split(b"\r\n")) <= 998
    assert b"\0" not in data and re.search(rb"\r(?!\n)", data) is None


def test_a_long_message_id_never_makes_a_header_line_over_998_octets(env: jinja2.Environment) -> None:
    """Review D8/N3: a 1,002-character Message-ID made In-Reply-To 1,015 octets long."""
    for length in (60, 900, 990, 1002):
        original_id = "<" + "x" * (length - 12) + "@buyer.test>"
        data = forward(env, inquiry=make_inquiry(message_id=original_id))
        head = data.split(b"\r\n\r\n", 1)[0]
        assert max(len(line) for line in head.split(b"\r\n")) <= 998, length
        threaded = parse(data)["In-Reply-To"]
        assert (threaded is not None and threaded.strip() == original_id) == (length < 997), length


def test_boundary_avoids_the_originals_content(env: jinja2.Environment) -> None:
    first = parse(forward(env)).get_boundary()
    assert first
    # An original that happens to contain that very boundary, as a delimiter line.
    raw = RAW_CRLF + b"--" + first.encode() + b"\r\n"
    data = forward(env, raw=raw)
    assert first not in (parse(data).get_boundary() or "")
    assert embedded_original(data) == raw


def test_choose_boundary_is_deterministic_and_avoids_content() -> None:
    boundary = choose_boundary(b"abc")
    assert boundary == choose_boundary(b"abc")
    assert choose_boundary(b"abc" + boundary.encode()) != boundary


def test_forward_is_deterministic(env: jinja2.Environment) -> None:
    assert forward(env) == forward(env)


def test_mail_parser_reads_the_forward(env: jinja2.Environment) -> None:
    inquiry = make_inquiry(sender_name="张伟")
    mail = mailparser.parse_from_bytes(forward(env, inquiry=inquiry, subject="[DE] 询价", language="zh"))
    assert mail.subject == "[DE] 询价"
    assert mail.message_id == "<fwd.q1@mailrouter.example.com>"
    assert mail.reply_to == [("张伟", "hans@buyer.de")]
    assert "直接回复本邮件即可回复 张伟。" in mail.text_plain[0]
    assert [a["filename"] for a in mail.attachments] == ["original.eml"]


# --- templating ------------------------------------------------------------------------------

def test_candidate_languages() -> None:
    assert candidate_languages("zh-CN") == ["zh-cn", "zh", "en"]
    assert candidate_languages("zh") == ["zh", "en"]
    assert candidate_languages(None) == ["en"]
    assert candidate_languages("../../etc") == ["en"]


def test_environment_is_strict_and_escapes_only_html(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "t.txt.j2").write_text("{{ value }}", encoding="utf-8")
    (tmp_path / "en" / "t.html.j2").write_text("{{ value }}", encoding="utf-8")
    env = make_environment(tmp_path)
    assert render(env, "t.txt.j2", "en", value="<b>") == "<b>"
    assert render(env, "t.html.j2", "zh", value="<b>") == "&lt;b&gt;"
    with pytest.raises(jinja2.UndefinedError):
        render(env, "t.txt.j2", "en")


@pytest.mark.parametrize(("size", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"),
                                            (5 * 1024 * 1024, "5.0 MB")])
def test_filesize(size: int, text: str) -> None:
    assert filesize(size) == text


# --- split around the original (big originals are streamed from a spool file) ----------------

def test_build_forward_bytes_are_pinned(env: jinja2.Environment) -> None:
    """Pinned bytes: a change to the forward's layout must be deliberate (re-pinned when the
    header fields came to be written directly, issue 7; the binary one when binary originals
    came to be embedded in base64, issue 14; the rep's layout and "Buyer via Sales", issue 15; both when the router header came to be signed)."""
    binary = b"Subject: long\r\n\r\n" + "长".encode() * 400 + b"\r\n"
    assert hashlib.sha256(forward(env)).hexdigest() == \
        "1c59c337fc2ce49b7121f646fa38dfb07ec3a05756083904c03861607eadda8d"
    assert hashlib.sha256(forward(env, raw=binary, language="zh")).hexdigest() == \
        "caf9af1dd4664b2f4185cd1e91e0369f8d9d528d47ba05b248c2988454453eff"


def test_forward_frame_is_the_forward_around_the_original(env: jinja2.Environment) -> None:
    head, tail = forward_frame(make_inquiry(), DECISION, make_spec(), env, NOW, raw_transfer_encoding(RAW_CRLF),
                               lambda alternative: choose_boundary(RAW_CRLF, alternative))
    assert head + RAW_CRLF + tail == forward(env)
    assert tail == b"\r\n--" + parse(forward(env)).get_boundary().encode() + b"--\r\n"


def test_routing_block_shows_the_country_evidence(env: jinja2.Environment) -> None:
    inquiry = make_inquiry(country="ES", country_evidence="phone +34 in signature; 'España' in signature")
    message = parse(forward(env, inquiry=inquiry))
    text = body_part(message, "text/plain").get_content()
    html = body_part(message, "text/html").get_content()
    assert "Country:     Spain (phone +34 in signature; 'España' in signature)" in text
    assert "Spain (phone +34 in signature; &#39;España&#39; in signature)" in html


# --- what the rep reads (issue 15 item 2) ------------------------------------------------------

@pytest.mark.parametrize("name, shown", [
    ("Hans Müller", "Hans Müller via Sales Inbox"),
    ("", "hans at buyer.de via Sales Inbox"),  # no @ in a display name: no client takes it for the sender
    ('Evil"\r\nBcc: x@y.z', 'Evil" Bcc: x at y.z via Sales Inbox'),
    ("A" * 100, "A" * 63 + "… via Sales Inbox"),
])
def test_from_shows_the_buyer_via_the_shared_mailbox(env: jinja2.Environment, name: str, shown: str) -> None:
    data = forward(env, inquiry=make_inquiry(sender_name=name))
    sender = parse(data)["From"].addresses[0]
    assert _decoded_display_name(data, "From") == shown
    assert sender.addr_spec == "sales@example.com"  # the shared mailbox's address: DMARC passes
    assert b"\nBcc:" not in header_block(data)


def _decoded_display_name(data: bytes, name: str) -> str:
    """As a mail client shows it (the email package's address parser puts a space between
    adjacent encoded-words, which RFC 2047 6.2 says to drop)."""
    from email.header import decode_header, make_header

    raw = re.search(rb"^" + name.encode() + rb": (.*?)\r\n(?! )", header_block(data) + b"\r\n", re.M | re.S)[1]
    phrase = b" ".join(raw.split(b"\r\n ")).decode("ascii").rpartition(" <")[0]
    if phrase.startswith('"'):
        phrase = phrase[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return str(make_header(decode_header(phrase)))


def test_labels_go_to_a_header_and_the_body_not_the_subject(env: jinja2.Environment) -> None:
    message = parse(forward(env, subject="Inquiry: LED panels", labels="[再次询盘][DE][LED/PCB]"))
    assert message["Subject"] == "Inquiry: LED panels"
    assert message["X-Mailrouter-Labels"] == "[再次询盘][DE][LED/PCB]"
    assert "[再次询盘][DE][LED/PCB] New customer · Germany · LED, PCB · rule europe" in \
        body_part(message, "text/plain").get_content().splitlines()


@pytest.mark.parametrize("language, header, context", [
    ("en", "---------- Forwarded message ----------", "New customer · Germany"),
    ("zh", "------------------ 原始邮件 ------------------", "新客户 · 德国"),
])
def test_buyer_text_and_signature_first_then_context_then_details(
        env: jinja2.Environment, language: str, header: str, context: str) -> None:
    inquiry = make_inquiry(signature="Hans Müller\nEinkauf, Buyer GmbH\nTel. +49 89 1234567")
    message = parse(forward(env, inquiry=inquiry, language=language))
    for part in ("text/plain", "text/html"):
        body = body_part(message, part).get_content()
        order = [body.find(x) for x in ("Subject" if language == "en" else "主题", "Grüße, please quote",
                                        "Tel. +49 89 1234567", context, "europe")]
        assert -1 not in order and order == sorted(order), (part, order)
    assert body_part(message, "text/plain").get_content().startswith(header)


def test_html_context_line_is_escaped(env: jinja2.Environment) -> None:
    # Labels may hold customer text ({company}, {subject}); the shared text template is not
    # autoescaped, so the HTML must escape what it includes.
    message = parse(forward(env, labels="[<img src=x onerror=alert(1)>]"))
    html = body_part(message, "text/html").get_content()
    assert "<img" not in html and "[&lt;img src=x onerror=alert(1)&gt;]" in html


@pytest.mark.parametrize("language, label", [("en", "Reassigned:  from chen"), ("zh", "转派：from chen")])
def test_detail_labels_are_in_the_reps_language_only(env: jinja2.Environment, language: str, label: str) -> None:
    # The reassignment note's key is bilingual ("Reassigned 转派"); each template shows its half.
    message = parse(forward(env, language=language, extra={"Reassigned 转派": "from chen"}))
    text = body_part(message, "text/plain").get_content()
    assert label in text.splitlines() and "Reassigned 转派" not in text


def test_a_chinese_forward_labels_every_routing_note_in_chinese(env: jinja2.Environment) -> None:
    """The decision's notes are keyed in English; a zh rep read "Handover" and "Previously rejected"."""
    notes = {"Handover": "张伟 休假中", "Previously rejected": "价格太低", "Lead score": "42 (warm)",
             "Re-inquiry 再次询盘": "老客户"}
    for language, wanted in (("zh", ("转交：张伟 休假中", "曾被拒绝：价格太低", "线索评分：42 (warm)", "再次询盘：老客户")),
                             ("en", ("Handover", "Previously rejected", "Lead score"))):
        text = body_part(parse(forward(env, language=language, extra=notes)), "text/plain").get_content()
        assert all(w in text for w in wanted), text
        if language == "zh":
            assert "Handover" not in text and "Previously rejected" not in text
