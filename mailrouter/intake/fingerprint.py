"""Identities of a raw message, for handling each inquiry exactly once.

`raw_sha256` names these exact bytes (the same copy seen again after a UIDVALIDITY change).
`content_key` names the message as the sender wrote it: the delivering server prepends trace
headers (Received, Delivered-To, Return-Path) that differ between sales@ and info@, so the key
covers the headers the sender set plus the body. Message-ID alone is not enough: real mail
reuses it. Everything a reader sees of who sent it and how to answer is in the key (From,
Sender, Reply-To), and the body's MIME labels: two messages differing in any of them are two
inquiries, not a duplicate (review P9: a second Reply-To was filed as a duplicate).
"""
from __future__ import annotations

import hashlib
import re

SENDER_HEADERS = (b"message-id", b"from", b"sender", b"reply-to", b"date", b"subject", b"to", b"cc",
                  b"content-type", b"content-transfer-encoding")
_LONGEST_NAME = max(map(len, SENDER_HEADERS)) + 1
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


def written_message_id(raw: bytes) -> str:
    """The Message-ID header as written, read from the header block alone (linear, no parse):
    for a message recorded without a parse (struck twice, act/strikes.py)."""
    return _header_value(split_head(raw)[0], b"message-id").decode("ascii", "replace")


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


_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


class ContentKeyHasher:
    """`content_key` over a message fed in chunks, never holding more than its header block.

    Mirrors the whole-bytes functions step by step: the head ends at the first empty line (as
    `split_head`), header values are read as `_header_value` reads them, and the body is
    normalised as `normalised_body` does (line breaks \\r\\n, \\r or \\n; trailing white space
    of each line and of the whole body dropped), a chunk boundary anywhere.
    """

    def __init__(self) -> None:
        self._line = bytearray()  # the head line being read
        self._first_line = True
        self._in_head = True
        self._values: dict[bytes, bytes] = {}
        self._collecting: bytes | None = None  # the header whose continuation lines may follow
        self._parts: list[bytes] = []
        self._digest = hashlib.sha256()
        self._body = _BodyNormaliser(self._digest)

    def update(self, data: bytes) -> None:
        if not self._in_head:
            self._body.update(data)
            return
        start = 0
        while self._in_head:
            end = data.find(b"\n", start)
            if end < 0:
                self._line += data[start:]
                return
            self._line += data[start:end]
            start = end + 1
            self._head_line(bytes(self._line))
            self._line.clear()
        self._body.update(data[start:])

    def _head_line(self, line: bytes) -> None:
        """One complete head line, without its \\n."""
        if not self._first_line and line in (b"", b"\r"):
            self._end_head()
            return
        self._first_line = False
        self._header_line(line.removesuffix(b"\r"))

    def _header_line(self, line: bytes) -> None:
        if self._collecting is not None:
            if line[:1] in (b" ", b"\t"):
                self._parts.append(line)
                return
            self._values[self._collecting] = b" ".join(b" ".join(self._parts).split())
            self._collecting = None
        lower = line[:_LONGEST_NAME].lower()
        for name in SENDER_HEADERS:
            if name not in self._values and lower.startswith(name + b":"):
                self._collecting, self._parts = name, [line[len(name) + 1:]]
                break

    def _end_head(self) -> None:
        self._header_line(b"")  # closes a header still collecting continuation lines
        self._in_head = False
        for name in SENDER_HEADERS:
            self._digest.update(name + b":" + self._values.get(name, b"") + b"\n")

    def hexdigest(self) -> str:
        """The key; call once, after the last chunk."""
        if self._in_head:  # no empty line at all: everything was head (split_head's raw, b"")
            if self._line:
                self._header_line(bytes(self._line))  # the last line keeps a \r it ends with
            self._end_head()
        return self._digest.hexdigest()


class _BodyNormaliser:
    """Feeds `normalised_body` of a body given in chunks into a digest."""

    def __init__(self, digest: "hashlib._Hash") -> None:
        self._digest = digest
        self._cr = False  # the previous chunk ended with \r: a \n starting the next is its pair
        self._breaks = 0  # line breaks owed before the next non-blank text
        self._space = b""  # trailing white space of the current line, kept until text follows

    def update(self, data: bytes) -> None:
        if self._cr and data[:1] == b"\n":
            data = data[1:]
            self._cr = False
        if not data:
            return
        self._cr = data.endswith(b"\r")
        pieces = _LINE_BREAK.split(data)
        self._text(pieces[0])
        for piece in pieces[1:]:
            self._space = b""
            self._breaks += 1
            self._text(piece)

    def _text(self, piece: bytes) -> None:
        stripped = piece.rstrip()
        if not stripped:
            self._space += piece
            return
        # blank lines count once text follows them; at the end they are dropped (rstrip)
        self._digest.update(b"\n" * self._breaks + self._space + stripped)
        self._breaks, self._space = 0, piece[len(stripped):]
