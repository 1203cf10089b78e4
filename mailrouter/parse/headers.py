"""Guarded header reading: every value comes back decoded, single-line and sanitised."""
from __future__ import annotations

import base64
import binascii
import email.header
import email.utils
import re
from datetime import datetime, timezone
from email.message import Message

from mailrouter.parse.text import decode_bytes, one_line, restore_surrogates

SUBJECT_LIMIT = 500
NAME_LIMIT = 200
HEADER_VALUE_LIMIT = 2000
HEADER_COUNT_LIMIT = 300
_ADDRESS = re.compile(r"^[^@\s<>,;:\"]+@[^@\s<>,;:\"]+$")
_MESSAGE_ID = re.compile(r"<[^<>]*>")


def raw_values(msg: Message, name: str) -> list[str]:
    """All values of a header as the message holds them: raw 8-bit bytes are surrogate escapes
    (compat32's storage), encoded words still encoded; `decode_words` reads both."""
    wanted = name.lower()
    return [_as_text(value) for key, value in msg.raw_items() if str(key).lower() == wanted]


def _as_text(value: object) -> str:
    # A Header object is what a caller set on a message it built; parsed mail holds strings.
    return value.encode() if isinstance(value, email.header.Header) else str(value)


# An RFC 2047 encoded word. The text may hold raw 8-bit bytes (as surrogate escapes) but not
# "?", so a failed match stops at the next "?": linear in the header's length.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"[ \t\r\n]*")


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words the way mail clients do, never raising: raw 8-bit text
    around them is decoded as undeclared text (UTF-8, else GB18030), raw bytes inside one with
    the word's own charset, and white space between two adjacent words is dropped."""
    pieces: list[str] = []
    position, after_word = 0, False
    for word in _ENCODED_WORD.finditer(value):
        between = value[position:word.start()]
        if not (after_word and _BETWEEN_WORDS.fullmatch(between)):
            pieces.append(restore_surrogates(between))
        decoded = _decode_word(*word.groups())
        pieces.append(restore_surrogates(word.group()) if decoded is None else decoded)
        position, after_word = word.end(), decoded is not None
    pieces.append(restore_surrogates(value[position:]))
    return "".join(pieces)


def _decode_word(charset: str, encoding: str, text: str) -> str | None:
    """One encoded word's text, or None when it does not decode (then it stays as written)."""
    data = text.encode("utf-8", errors="surrogateescape")  # escapes back to the raw bytes
    try:
        if encoding in "bB":
            data = base64.b64decode(data + b"=" * (-len(data) % 4))
        else:
            data = binascii.a2b_qp(data.replace(b"_", b" "))
    except (binascii.Error, ValueError):
        return None
    return decode_bytes(data, charset.split("*", 1)[0])  # RFC 2231 adds "*language"


def header_text(msg: Message, name: str, limit: int = HEADER_VALUE_LIMIT) -> str:
    """The first value of a header, decoded and on one line ("" when absent)."""
    values = raw_values(msg, name)
    return one_line(decode_words(values[0]), limit) if values else ""


def subject(msg: Message) -> str:
    return header_text(msg, "subject", SUBJECT_LIMIT)


def addresses(msg: Message, *names: str) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs from the given headers, invalid ones left out.

    Addresses are split before decoding, so a comma inside an encoded name cannot split it.
    """
    found: list[tuple[str, str]] = []
    for name in names:
        for display, addr in _getaddresses(raw_values(msg, name)):
            address = clean_address(addr)
            if address:
                found.append((one_line(decode_words(display), NAME_LIMIT), address))
    return found


def _getaddresses(values: list[str]) -> list[tuple[str, str]]:
    try:
        return email.utils.getaddresses(values)
    except Exception:  # a pathological header must cost us the addresses, not the message
        return []


def clean_address(addr: str) -> str:
    """A lower-cased single address, or "" when it does not look like one."""
    address = one_line(decode_words(addr), 320).strip("<> ").lower()
    return address if _ADDRESS.match(address) else ""


def first_address(msg: Message, name: str) -> tuple[str, str]:
    found = addresses(msg, name)
    return found[0] if found else ("", "")


def unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def recipients(msg: Message) -> tuple[str, ...]:
    pairs = addresses(msg, "to", "cc", "delivered-to", "x-original-to")
    return unique([addr for _name, addr in pairs])


def message_id(msg: Message) -> str:
    value = header_text(msg, "message-id")
    match = _MESSAGE_ID.search(value)
    if match:
        return match.group().replace(" ", "")
    return f"<{value}>" if value and " " not in value else ""


def date(msg: Message) -> datetime | None:
    value = header_text(msg, "date")
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # "-0000" means "zone unknown"; UTC is the honest reading and keeps datetimes comparable.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def header_map(msg: Message) -> dict[str, str]:
    """Lower-cased header name -> first value, sanitised, for the classifiers."""
    result: dict[str, str] = {}
    for name in msg.keys()[:HEADER_COUNT_LIMIT]:
        key = one_line(str(name), 100).lower()
        if key and key not in result:
            result[key] = header_text(msg, key)
    return result


_BOM = b"\xef\xbb\xbf"
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# RFC 5322 section 4.5 obsolete syntax, which must still be read: white space before the colon.
_SPACE_BEFORE_COLON = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:", re.MULTILINE)


def normalise_head(raw: bytes) -> bytes:
    """The bytes the stdlib parser can read: a leading UTF-8 byte-order mark (editors, some
    web forms) removed, and obsolete `Name :` header lines written `Name:`. Unchanged (not
    copied) when neither is there, which is all ordinary mail."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    found = _HEAD_END.search(raw)
    end = found.start() if found else len(raw)
    if _SPACE_BEFORE_COLON.search(raw, 0, end) is None:
        return raw
    return _SPACE_BEFORE_COLON.sub(rb"\1:", raw[:end]) + raw[end:]
