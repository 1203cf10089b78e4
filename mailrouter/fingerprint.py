"""Identities of a raw message, for handling each inquiry exactly once.

`raw_sha256` names these exact bytes (the same copy seen again after a UIDVALIDITY change).
`content_key` names the message as the sender wrote it: the delivering server prepends trace
headers (Received, Delivered-To, Return-Path) that differ between sales@ and info@, so the key
covers the headers the sender set plus the body. Message-ID alone is not enough: real mail
reuses it.
"""
from __future__ import annotations

import hashlib
import re

SENDER_HEADERS = (b"message-id", b"from", b"date", b"subject", b"to", b"cc")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def raw_sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def content_key(raw: bytes) -> str:
    head, body = split_head(raw)
    digest = hashlib.sha256()
    for name in SENDER_HEADERS:
        digest.update(name + b":" + _header_value(head, name) + b"\n")
    digest.update(normalised_body(body))
    return digest.hexdigest()


def normalised_body(body: bytes) -> bytes:
    """Line endings and trailing white space change in transit (SMTP, LMTP, maildir); the text doesn't."""
    return b"\n".join(line.rstrip() for line in body.splitlines()).rstrip()


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    match = _HEADER_END.search(raw)
    if not match:
        return raw, b""
    return raw[: match.start()], raw[match.end():]


def _header_value(head: bytes, name: bytes) -> bytes:
    """The first occurrence of a header, unfolded and whitespace-normalised."""
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    for i, line in enumerate(lines):
        if line.lower().startswith(name + b":"):
            value = [line[len(name) + 1:]]
            for cont in lines[i + 1:]:
                if not cont[:1] in (b" ", b"\t"):
                    break
                value.append(cont)
            return b" ".join(b" ".join(value).split())
    return b""
