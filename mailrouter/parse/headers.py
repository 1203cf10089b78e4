"""Guarded header reading: every value comes back decoded, single-line and sanitised."""
from __future__ import annotations

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
    """All values of a header as text, raw 8-bit bytes already turned back into characters."""
    values = msg.get_all(name) or []
    return [restore_surrogates(_as_text(value)) for value in values]


def _as_text(value: object) -> str:
    # compat32 hands back a Header object (not a str) when the raw value had 8-bit bytes.
    if isinstance(value, email.header.Header):
        return "".join(
            decode_bytes(chunk, None) if isinstance(chunk, bytes) else chunk
            for chunk, _charset in email.header.decode_header(value)
        )
    return str(value)


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words, never raising on bad charsets or broken encodings."""
    try:
        chunks = email.header.decode_header(value)
    except Exception:  # the stdlib raises several types on malformed encoded words
        return value
    return "".join(
        decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk
        for chunk, charset in chunks
    )


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
