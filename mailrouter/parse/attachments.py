"""Walking the MIME tree: which leaves are attachments, and what they are called."""
from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message

from mailrouter.model import Attachment

from mailrouter.parse.headers import decode_words
from mailrouter.parse.text import one_line

MAX_PARTS = 500  # a hostile message may nest thousands of parts; past this we stop looking
_FORWARDED = frozenset({"message/rfc822", "message/global"})
_PATH_PREFIX = re.compile(r"^.*[/\\]")


def leaf_parts(msg: Message) -> Iterator[Message]:
    """Non-multipart parts in document order; an attached message is one leaf, not entered."""
    stack = [msg]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        # is_multipart first: get_payload() on a leaf decodes 8-bit text with its charset
        # label, which raises for a junk one ("idna", "undefined")
        if part.get_content_maintype() == "multipart" and part.is_multipart():
            stack.extend(reversed(children(part)))
        else:
            yield part


def filename(part: Message) -> str:
    """The decoded file name: RFC 2231 parameters, and the RFC 2047 words Outlook puts there."""
    try:
        raw = part.get_filename() or ""
    except Exception:  # malformed RFC 2231 continuations
        return ""
    name = one_line(decode_words(str(raw)), 255)
    # Only the base name: a name is data to display, never a path to follow.
    return _PATH_PREFIX.sub("", name)


def children(part: Message) -> list[Message]:
    """The parts inside a multipart or an attached message (a leaf's payload is its text)."""
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def is_attachment(part: Message) -> bool:
    """Named parts, explicit attachments and forwarded messages; unnamed inline images are not."""
    if part.get_content_type() in _FORWARDED:
        return True
    disposition = (part.get_content_disposition() or "").lower()
    return bool(filename(part)) or disposition == "attachment"


def size_of(part: Message) -> int:
    """Decoded size; for base64 computed from the encoded text, so a 25 MB file is not decoded
    just to be measured."""
    try:
        encoded = part.get_payload()
        if isinstance(encoded, str) and part.get("content-transfer-encoding", "").strip().lower() == "base64":
            data = len(encoded) - sum(encoded.count(c) for c in "\r\n \t")
            return data * 3 // 4 - encoded.rstrip().count("=")
        payload = part.get_payload(decode=True)
        if payload is None:  # an attached message: its payload is a list of messages
            return sum(len(sub.as_bytes()) for sub in children(part))
    except Exception:
        return 0
    return len(payload)


def attachments(msg: Message) -> tuple[Attachment, ...]:
    return tuple(
        Attachment(filename(part), part.get_content_type(), size_of(part))
        for part in leaf_parts(msg)
        if is_attachment(part)
    )
