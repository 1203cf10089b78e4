"""Build the message that forwards an inquiry to a rep. Pure: returns bytes, sends nothing.

The forward comes From the shared mailbox (a buyer's From would fail DMARC at the rep's
server), shown as "Buyer via Sales", with Reply-To set to the buyer, so a rep just hits Reply.
Its subject is the buyer's own (plus the company's customer-facing tag, if any): that is what
the buyer gets back. Internal labels (re-inquiry, country, products, rule) stay with the rep:
the body's context line and the X-Mailrouter-Labels header. The body (text and HTML, in the
rep's language) is the buyer's text with its signature under a From/Sent/To/Subject block, as
mail clients forward, then the context line and the details; the untouched original follows
as message/rfc822.

Transfer: a 7bit or 8bit original is embedded byte for byte (8bit is sent with BODY=8BITMIME;
to a server that does not offer it, the outbox base64-wraps the 8bit original at send time,
`seven_bit_forward`). An original no SMTP server must accept as it is (a line
over 998 octets, a NUL, a bare CR: "binary") is embedded base64-encoded instead, with
`Content-Transfer-Encoding: base64` on its message/rfc822 part: RFC 2046 names only 7bit, 8bit
and binary for message/rfc822, but binary needs BINARYMIME, which few servers offer, and
servers enforcing RFC 5321 refuse or cut such lines; Thunderbird, Outlook and Gmail open the
part, and decoding it gives the original's exact bytes (`embedded_original` in the tests).

Line endings: everything this module writes uses CRLF. The original is embedded byte for byte,
whatever its line endings: IMAP hands us CRLF, so production forwards are uniformly CRLF; a
caller passing LF-only bytes (a file, a maildir) gets them back as they were, and the SMTP
client turns bare LF into CRLF on the wire as it does for any message.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email import errors
from email.header import Header
from email.headerregistry import Address
from email.utils import format_datetime
from itertools import count

import jinja2

from mailrouter.decide.trust import ReplyTarget, reply_target
from mailrouter.marker import signed
from mailrouter.model import ROUTER_HEADER, Attachment, Decision, Inquiry
from mailrouter.act.templating import country_name, language_name, long_datetime, render
from mailrouter.config.subject import MAX_SUBJECT_CHARS, SUBJECT_FIELDS, SubjectFormat  # noqa: F401  (SUBJECT_FIELDS: re-exported)

ORIGINAL_FILENAME = "original.eml"
MAX_LINE_OCTETS = 998  # RFC 5322 2.1.1, without the CRLF

CRLF = "\r\n"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # left by surrogateescape decoding of bad bytes
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_BARE_CR = re.compile(rb"\r(?!\n)")


class ForwardError(ValueError):
    """The forward cannot be built from this inquiry (e.g. no usable buyer address)."""


@dataclass(frozen=True)
class ForwardSpec:
    shared_address: str  # From: the shared mailbox, never the buyer (DMARC)
    shared_name: str  # display name, e.g. "Sales Inbox"
    rep_address: str
    rep_name: str
    message_id: str  # "<...>", deterministic, chosen by the caller
    subject: str  # the buyer's, with the customer tag if any (see tag_subject)
    language: str = "en"  # template language for this rep
    extra: Mapping[str, str] = field(default_factory=dict)  # more routing-block lines
    marker_key: bytes = field(default=b"", repr=False)  # signs the router header (mailrouter/marker.py)
    reply: ReplyTarget | None = None  # decide/trust.reply_target; None: the message's Reply-To, no own checks
    labels: str = ""  # internal labels for the rep (see tag_labels): body and header, never the subject


def clean_header_text(value: str) -> str:
    """One line of printable text: the single gate for header values from customer text.

    CR/LF and other control characters become spaces (so no header can be injected), runs
    of whitespace collapse, and undecodable bytes become U+FFFD. Non-ASCII stays; the email
    policy encodes it (RFC 2047) when the header is written.
    """
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", value))
    return " ".join(text.split())


def _clean_body_text(value: str) -> str:
    return _SURROGATE.sub("\ufffd", value)


def _subject_fields(inquiry: Inquiry, decision: Decision) -> dict[str, str]:
    fields = {
        "subject": inquiry.subject,
        "country": inquiry.country or "",
        "products": "/".join(inquiry.products),
        "language": inquiry.language or "",
        "domain": inquiry.domain,
        "company": inquiry.company or "",
        "rule": decision.rule or "",
        "rep": decision.rep or "",
        "team": decision.team or "",
        "tier": inquiry.tier or "",
        "reinquiry": REINQUIRY_TAG if decision.reinquiry else "",
    }
    return {name: clean_header_text(value) for name, value in fields.items()}


REINQUIRY_TAG = "再次询盘"


def tag_subject(
    fmt: SubjectFormat | str, inquiry: Inquiry, decision: Decision, max_length: int = MAX_SUBJECT_CHARS
) -> str:
    """Fill the configured subject format ("[{country}][{products}] {subject}") for this
    inquiry: an empty field disappears together with the brackets wrapped round it, so no "[]"
    is left. Single line, at most max_length. A str is compiled here (tests, ad-hoc callers);
    the daemon passes the SubjectFormat compiled once when the config was read."""
    compiled = fmt if isinstance(fmt, SubjectFormat) else SubjectFormat.compile(fmt)
    return compiled.render(_subject_fields(inquiry, decision), max_length)


def tag_labels(fmt: SubjectFormat | str, inquiry: Inquiry, decision: Decision) -> str:
    """The internal labels ("[再次询盘][DE][PCB]") for the rep's eyes; "" when none apply."""
    compiled = fmt if isinstance(fmt, SubjectFormat) else SubjectFormat.compile(fmt)
    return compiled.render(_subject_fields(inquiry, decision), MAX_LABELS_CHARS, empty="")


MAX_LABELS_CHARS = 120
MAX_DISPLAY_NAME = 64  # of the buyer's name in "Buyer via Sales"; a list shows about 30
LABELS_HEADER = "X-Mailrouter-Labels"


def display_name(buyer: Address, shared_name: str) -> str:
    """"Klaus Becker via Sales": the buyer's name (or address) and the shared mailbox's, as
    Mailman and Google Groups do. Any @ is written "at", so no client shows an address there
    that is not the sender's ("ceo@bank.example via Sales")."""
    name = (clean_header_text(buyer.display_name) or buyer.addr_spec).replace("@", " at ")
    if len(name) > MAX_DISPLAY_NAME:
        name = name[:MAX_DISPLAY_NAME - 1].rstrip() + "…"
    shared = clean_header_text(shared_name)
    return f"{name} via {shared}" if shared else name


def _address(name: str, address: str) -> Address:
    addr = clean_header_text(address)
    local, at, domain = addr.rpartition("@")
    if not (local and at and domain) or not local.isascii():
        # A non-ASCII local part needs SMTPUTF8, which we do not assume of the smarthost.
        raise ForwardError(f"unusable email address {addr!r}")
    if len(local) > 64 or len(domain) > 255:  # RFC 5321 4.5.3.1: no server would take it
        raise ForwardError(f"unusable email address {addr[:80]!r}…: longer than SMTP allows")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")  # IDN -> punycode
        return Address(display_name=clean_header_text(name), username=local, domain=ascii_domain)
    except (UnicodeError, ValueError, errors.HeaderParseError) as exc:
        raise ForwardError(f"unusable email address {addr!r}: {exc}") from exc


def _message_id(value: str) -> str | None:
    cleaned = clean_header_text(value)
    return cleaned if _MESSAGE_ID.fullmatch(cleaned) else None


def _buyer(inquiry: Inquiry, spec: ForwardSpec) -> Address:
    """The Reply-To: the address the policy chose, with the display name written with it."""
    target = spec.reply or reply_target(inquiry, frozenset(), frozenset(), known_customer=False)
    if not target.address:
        # Without a Reply-To the rep's reply would go back to the shared mailbox and be lost.
        raise ForwardError("the inquiry names no buyer address to reply to")
    return _address(target.name, target.address)


# Header fields are written here rather than through email.policy, whose header parsing and
# refolding cost ~1 ms per forward (a fifth of a backlog's per-message work). Every value has
# passed clean_header_text (one line, no controls) or is our own, so writing it is folding it.
_PHRASE_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
MAX_HEADER_LINE = 78  # RFC 5322 2.1.1 "SHOULD"


def _encoded(text: str) -> bool:
    """Written as RFC 2047 encoded-words: non-ASCII, or a word too long to fold at a space (a
    2,000-character name would otherwise be one line over the 998 octets SMTP servers accept)."""
    return not text.isascii() or any(len(word) > MAX_HEADER_LINE - 12 for word in text.split(" "))


def _field(name: str, value: str) -> bytes:
    """`Name: value` CRLF, folded at spaces; non-ASCII text as RFC 2047 encoded-words."""
    if _encoded(value):
        encoded = Header(value, "utf-8", header_name=name, maxlinelen=MAX_HEADER_LINE)
        return f"{name}: {encoded.encode(linesep=CRLF)}{CRLF}".encode("ascii")
    return (fold_ascii(f"{name}: {value}") + CRLF).encode("ascii")


def fold_ascii(line: str, width: int = MAX_HEADER_LINE) -> str:
    """Fold before spaces so lines stay within `width` where the words allow it."""
    if len(line) <= width:
        return line
    name, *words = line.split(" ")
    out, current = [], name + " " + words.pop(0) if words else name  # never fold after "Name:"
    for word in words:
        if len(current) + 1 + len(word) > width:
            out.append(current)
            current = " " + word  # the continuation line starts with the folding space
        else:
            current = f"{current} {word}"
    out.append(current)
    return CRLF.join(out)


def _id_field(name: str, message_id: str) -> bytes | None:
    """`Name: <id>`, the id on a continuation line when it is long; None when even that line
    would exceed 998 octets (a hostile Message-ID: threading is lost, the forward is not)."""
    if len(name) + 2 + len(message_id) <= MAX_HEADER_LINE:
        return f"{name}: {message_id}{CRLF}".encode("ascii")
    if 1 + len(message_id) > MAX_LINE_OCTETS:
        return None
    return f"{name}:{CRLF} {message_id}{CRLF}".encode("ascii")


def _address_field(name: str, address: Address) -> bytes:
    """`Name: display name <addr>`, the name quoted or RFC 2047-encoded as it needs."""
    phrase, angle = address.display_name, f"<{address.addr_spec}>"
    if phrase and _encoded(phrase):
        encoded = Header(phrase, "utf-8", header_name=name, maxlinelen=MAX_HEADER_LINE).encode(linesep=CRLF)
        last_line = len(encoded.rpartition(CRLF)[2]) + (0 if CRLF in encoded else len(name) + 2)
        fold = CRLF if last_line + 1 + len(angle) > MAX_HEADER_LINE else ""
        return f"{name}: {encoded}{fold} {angle}{CRLF}".encode("ascii")
    if phrase and _PHRASE_SPECIALS.search(phrase):
        phrase = '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return (fold_ascii(f"{name}: {phrase} {angle}" if phrase else f"{name}: {angle}") + CRLF).encode("ascii")


def _headers(
    inquiry: Inquiry, decision: Decision, spec: ForwardSpec, now: datetime, body_type: str, cte: str
) -> bytes:
    message_id = _message_id(spec.message_id)
    if message_id is None:
        raise ValueError(f"ForwardSpec.message_id must look like <id@host>: {spec.message_id!r}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware: the Date header states its offset")
    fields = [
        _address_field("From", _address(display_name(_buyer(inquiry, spec), spec.shared_name), spec.shared_address)),
        _address_field("To", _address(spec.rep_name, spec.rep_address)),
        _address_field("Reply-To", _buyer(inquiry, spec)),
        _field("Subject", clean_header_text(spec.subject)),
        _field("Date", format_datetime(now)),
        _field("Message-ID", message_id),
    ]
    if original := _message_id(inquiry.message_id):
        fields += [field for name in ("In-Reply-To", "References") if (field := _id_field(name, original))]
    # Ask auto-responders (RFC 3834, Exchange) not to answer the forward: no loops.
    fields += [_field("Auto-Submitted", "auto-generated"), _field("X-Auto-Response-Suppress", "All")]
    if decision.reinquiry:  # a returning buyer: most mail clients show this as "important"
        fields += [_field("Importance", "high"), _field("X-Priority", "2 (High)")]
    rule, rep = decision.rule or "none", decision.rep or spec.rep_address
    fields += [
        _field(ROUTER_HEADER, signed(spec.marker_key, message_id,
                                     f"forward; rule={clean_header_text(rule)}; rep={clean_header_text(rep)}")),
        *([_field(LABELS_HEADER, labels)] if (labels := clean_header_text(spec.labels)) else []),
        _field("MIME-Version", "1.0"),
        _field("Content-Type", body_type),
        _field("Content-Transfer-Encoding", cte),
    ]
    return b"".join(fields)


# The decision's notes are keyed in English (code reads "Handover" back); a zh rep reads them so.
NOTE_LABELS = {"zh": {"Lead score": "线索评分", "Previously rejected": "曾被拒绝", "Handover": "转交",
                      "Reassigned 转派": "转派", "Re-inquiry 再次询盘": "再次询盘",
                      "Check Reply-To 核对回复地址": "核对回复地址"}}


def note_label(key: str, language: str) -> str:
    return NOTE_LABELS.get(language, {}).get(key, key)


def _template_context(inquiry: Inquiry, decision: Decision, spec: ForwardSpec, now: datetime) -> dict[str, object]:
    buyer = _buyer(inquiry, spec)
    language = spec.language
    return {
        "rule": decision.rule,
        "team": decision.team,
        "how": decision.how,  # rule | registry | manual | reassign: the template says why in words
        "returning": decision.reinquiry,
        "labels": clean_header_text(spec.labels),
        "reason": clean_header_text(decision.reason_in(language)),  # why this rep, in the rep's words
        "country": inquiry.country,
        "country_name": country_name(inquiry.country, language),
        "country_evidence": clean_header_text(inquiry.country_evidence),  # why that country
        "language": inquiry.language,
        "language_name": language_name(inquiry.language, language),
        "products": inquiry.products,
        "shared_address": spec.shared_address,
        "buyer_name": clean_header_text(buyer.display_name),
        "buyer_address": buyer.addr_spec,
        "company": clean_header_text(inquiry.company or "") or None,
        "attachments": [
            Attachment(clean_header_text(a.filename) or "(unnamed)", a.content_type, a.size)
            for a in inquiry.attachments
        ],
        "extra": {note_label(clean_header_text(k), language): clean_header_text(v) for k, v in spec.extra.items()},
        "original": _original_block(inquiry, buyer, spec, now),
        "text": _clean_body_text(inquiry.text),
        "signature": _clean_body_text(inquiry.signature),
    }


def _original_block(inquiry: Inquiry, buyer: Address, spec: ForwardSpec, now: datetime) -> dict[str, str]:
    """From/Sent/To/Subject of the buyer's message, as a mail client heads a forwarded one."""
    headers = inquiry.headers
    sent = inquiry.date.astimezone(now.tzinfo) if inquiry.date else None
    return {
        "from": clean_header_text(headers.get("from", "")) or str(buyer),
        "sent": long_datetime(sent, spec.language) if sent else "",
        "to": clean_header_text(headers.get("to", "")) or spec.shared_address,
        "cc": clean_header_text(headers.get("cc", "")),
        "subject": clean_header_text(inquiry.subject),
    }


def _alternative_part(context: dict[str, object], language: str, env: jinja2.Environment) -> bytes:
    """multipart/alternative of the text and HTML renderings, each in the shorter of
    quoted-printable (mostly-ASCII languages) and base64 (Chinese)."""
    leaves = [_text_leaf(render(env, "forward.txt.j2", language, **context), "plain"),
              _text_leaf(render(env, "forward.html.j2", language, **context), "html")]
    boundary = choose_boundary(*leaves).encode("ascii")
    parts = [b"--" + boundary + b"\r\n" + leaf + b"\r\n" for leaf in leaves]
    return (b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"\r\n'
            b"MIME-Version: 1.0\r\n\r\n" + b"".join(parts) + b"--" + boundary + b"--\r\n")


def _text_leaf(text: str, subtype: str) -> bytes:
    data = "\n".join(text.splitlines()).encode("utf-8", "surrogateescape") + b"\n"
    quoted = binascii.b2a_qp(data, istext=True)
    base64_length = (len(data) + 2) // 3 * 4 * 77 // 76  # with its line breaks, about
    if len(quoted) <= base64_length:
        cte, body = "quoted-printable", quoted
    else:
        cte, body = "base64", base64.encodebytes(data)
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode("ascii") + body.replace(b"\n", b"\r\n")


def raw_transfer_encoding(raw: bytes) -> str:
    """The narrowest Content-Transfer-Encoding (RFC 2045) the original fits, unchanged.

    LF alone counts as a line ending (a file's local form); bare CR, NUL or a line over
    998 octets make it binary.
    """
    if b"\0" in raw or _BARE_CR.search(raw) or _longest_line(raw) > MAX_LINE_OCTETS:
        return "binary"
    return "7bit" if raw.isascii() else "8bit"


def _longest_line(raw: bytes) -> int:
    """Octets in the longest line, without its CR (C-speed first: lines of an attachment are many)."""
    lines = raw.split(b"\n")
    if max(map(len, lines), default=0) <= MAX_LINE_OCTETS:
        return 0
    return max(len(line.removesuffix(b"\r")) for line in lines)


class TransferEncodingTracker:
    """`raw_transfer_encoding` over a message fed in chunks (lines and CRLF pairs may span chunks)."""

    def __init__(self) -> None:
        self._binary = False
        self._eight_bit = False
        self._cr = False  # the last chunk ended with \r
        self._line = 0  # octets of the line being read so far

    def update(self, data: bytes) -> None:
        if not data:
            return
        if self._cr and data[:1] != b"\n":
            self._binary = True  # the \r that ended the last chunk was a bare CR
        self._eight_bit = self._eight_bit or not data.isascii()
        if not self._binary and (b"\0" in data or _BARE_CR.search(data, 0, len(data) - data.endswith(b"\r"))):
            self._binary = True
        lines = data.split(b"\n")
        if len(lines) > 1:
            self._end_line(self._line + len(lines[0]), lines[0][-1:] == b"\r" if lines[0] else self._cr)
            if max(map(len, lines[1:-1]), default=0) > MAX_LINE_OCTETS:
                for line in lines[1:-1]:
                    self._end_line(len(line), line.endswith(b"\r"))
            self._line = 0
        self._line += len(lines[-1])
        self._cr = data.endswith(b"\r")

    def _end_line(self, octets: int, ends_with_cr: bool) -> None:
        if octets - ends_with_cr > MAX_LINE_OCTETS:
            self._binary = True

    def result(self) -> str:
        """The encoding; call once, after the last chunk."""
        if self._cr:
            self._binary = True  # a message ending in \r: a bare CR
        self._end_line(self._line, self._cr)
        if self._binary:
            return "binary"
        return "8bit" if self._eight_bit else "7bit"


WRAPPED = "base64"  # how an original that is "binary" is embedded (see the module's docstring)
_BASE64_LINE = 57  # input bytes per 76-character line


def embedding(raw_cte: str) -> str:
    """The Content-Transfer-Encoding of the message/rfc822 part for an original of `raw_cte`."""
    return WRAPPED if raw_cte == "binary" else raw_cte


def embed(raw: bytes, raw_cte: str) -> bytes:
    """The original as it sits in the forward."""
    return raw if embedding(raw_cte) != WRAPPED else Base64Lines().feed(raw) + Base64Lines.finish_of(raw)


def embedded_size(size: int, raw_cte: str) -> int:
    """len(embed(raw, raw_cte)) for an original of `size` octets."""
    if embedding(raw_cte) != WRAPPED:
        return size
    lines, rest = divmod(size, _BASE64_LINE)
    return lines * 78 + ((rest + 2) // 3 * 4 + 2 if rest else 0)


class Base64Lines:
    """base64 in CRLF-ended lines of 76 characters, of bytes given in chunks of any size."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._carry + chunk
        whole = len(data) // _BASE64_LINE * _BASE64_LINE
        self._carry = data[whole:]
        return base64.encodebytes(data[:whole]).replace(b"\n", b"\r\n")

    def finish(self) -> bytes:
        rest, self._carry = self._carry, b""
        return base64.encodebytes(rest).replace(b"\n", b"\r\n")

    @staticmethod
    def finish_of(raw: bytes) -> bytes:
        """`finish()` after `feed(raw)` on a fresh encoder."""
        return base64.encodebytes(raw[len(raw) // _BASE64_LINE * _BASE64_LINE:]).replace(b"\n", b"\r\n")


def wrapped_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    encoder = Base64Lines()
    for chunk in chunks:
        yield encoder.feed(chunk)
    yield encoder.finish()


_PART_CTE = re.compile(rb"Content-Transfer-Encoding: (\w+)\r\n\r\n\Z")


def embedded_encoding(head: bytes) -> str:
    """The message/rfc822 part's encoding, read from a forward's head (`forward_frame`'s)."""
    found = _PART_CTE.search(head[-64:])
    return found.group(1).decode("ascii") if found else "7bit"


_OUTER_8BIT = b"\r\nContent-Transfer-Encoding: 8bit\r\n"
_BOUNDARY = re.compile(rb'boundary="([^"]+)"')
_PART_8BIT = b"Content-Transfer-Encoding: 8bit\r\n\r\n"


def seven_bit_head(head: bytes) -> bytes:
    """A forward head (`forward_frame`'s) for an 8bit original, rewritten for the original to
    go base64-wrapped: for a server that does not offer 8BITMIME (RFC 6152), which may refuse
    or mangle 8-bit data. Decoding the part still gives the original's exact bytes."""
    if not head.endswith(_PART_8BIT):
        raise ValueError("not the head of a forward with an 8bit original")
    outer_end = head.index(b"\r\n\r\n") + 2
    outer = head[:outer_end].replace(_OUTER_8BIT, b"\r\nContent-Transfer-Encoding: 7bit\r\n", 1)
    body = head[outer_end:-len(_PART_8BIT)]
    return outer + body + f"Content-Transfer-Encoding: {WRAPPED}\r\n\r\n".encode("ascii")


def seven_bit_forward(forward: bytes) -> bytes:
    """The whole forward with its 8bit original base64-wrapped (see seven_bit_head); a 7-bit
    forward is returned as it is."""
    if forward.isascii():
        return forward
    outer = forward[:forward.index(b"\r\n\r\n")]
    found = _BOUNDARY.search(outer)
    if found is None:
        raise ValueError("not a forward: no multipart boundary")
    # The boundary occurs in no part's content, so its last delimiter opens the original's part.
    opening = forward.rindex(b"--" + found.group(1) + b"\r\n")
    start = forward.index(b"\r\n\r\n", opening) + 4
    end = forward.rindex(b"\r\n--" + found.group(1) + b"--")
    return seven_bit_head(forward[:start]) + embed(forward[start:end], "binary") + forward[end:]


def needs_8bitmime(forward: bytes) -> bool:
    """Does this forward (or its head) carry 8-bit data (MAIL FROM ... BODY=8BITMIME)?"""
    return not forward.isascii()


def choose_boundary(*contents: bytes) -> str:
    """Deterministic boundary occurring in none of `contents` (same input, same bytes out).

    "=_" cannot occur in quoted-printable or base64 text, so a clash needs raw 8bit content
    and is then skipped by counting on.
    """
    for candidate in boundary_candidates(*(hashlib.sha256(content).digest() for content in contents)):
        if not any(candidate.encode() in content for content in contents):
            return candidate
    raise AssertionError("unreachable")


BOUNDARY_PREFIX = b"=_mr_"  # every boundary we choose starts so: content without it never clashes


def boundary_candidates(*digests: bytes) -> Iterator[str]:
    """The boundaries `choose_boundary` tries, in order, from the sha256 digests of the contents."""
    digest = hashlib.sha256(b"".join(digests)).digest()
    for attempt in count():
        yield BOUNDARY_PREFIX.decode() + hashlib.sha256(digest + str(attempt).encode()).hexdigest()[:32]


def build_forward(
    raw: bytes,
    inquiry: Inquiry,
    decision: Decision,
    spec: ForwardSpec,
    env: jinja2.Environment,
    now: datetime,
) -> bytes:
    """The forward as CRLF bytes ready for SMTP, with `raw` embedded unchanged.

    The outer multipart is assembled here rather than by the email package, which would
    re-serialise (and so alter) the message/rfc822 part.
    """
    raw_cte = raw_transfer_encoding(raw)
    head, tail = forward_frame(inquiry, decision, spec, env, now, raw_cte,
                               lambda alternative: choose_boundary(raw, alternative))
    return b"".join((head, embed(raw, raw_cte), tail))


def forward_frame(
    inquiry: Inquiry,
    decision: Decision,
    spec: ForwardSpec,
    env: jinja2.Environment,
    now: datetime,
    raw_cte: str,
    boundary_for: Callable[[bytes], str],
) -> tuple[bytes, bytes]:
    """The forward's bytes before and after the original, built without it: a big original
    stays in its spool file and is streamed between the two (see mailrouter.intake.spool).

    `raw_cte` is `raw_transfer_encoding` of the original; `boundary_for(alternative)` returns
    the boundary `choose_boundary(raw, alternative)` would.
    """
    alternative = _alternative_part(_template_context(inquiry, decision, spec, now), spec.language, env)
    boundary = boundary_for(alternative)
    body_type = f'multipart/mixed; boundary="{boundary}"'
    delimiter = b"--" + boundary.encode("ascii")
    part_cte = embedding(raw_cte)
    head = b"".join((
        # Our own parts are 7bit, so the original alone sets the outer encoding.
        _headers(inquiry, decision, spec, now, body_type, "7bit" if part_cte == WRAPPED else part_cte),
        b"\r\n",
        delimiter, b"\r\n",
        alternative.rstrip(b"\r\n"), b"\r\n",
        delimiter, b"\r\n",
        b"Content-Type: message/rfc822\r\n",
        f'Content-Disposition: attachment; filename="{ORIGINAL_FILENAME}"\r\n'.encode("ascii"),
        f"Content-Transfer-Encoding: {part_cte}\r\n".encode("ascii"),
        b"\r\n",
    ))
    return head, b"\r\n" + delimiter + b"--\r\n"
