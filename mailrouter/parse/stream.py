"""A big message reduced to what parsing needs, read once in chunks (pure: bytes in, bytes out).

`MimeReducer` keeps every header block and the bodies of text parts (up to a budget), and
drops every other body, noting its decoded size: `parse_message` on the reduced message gives
the same Inquiry as on the whole one, except attachment sizes, which `attachments` gives.
It follows the stdlib feed parser's reading (compat32): a part's headers end at an empty line
or at the first line that is not a header; a line that is a boundary of any enclosing
multipart ends the part being read; an attached message (message/*) is one leaf.
Line breaks are \\n or \\r\\n; a bare \\r (which the feed parser also takes for one) is text here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser

from mailrouter.model import Attachment

from mailrouter.parse.attachments import MAX_PARTS, filename, is_attachment
from mailrouter.parse.headers import normalise_head

TEXT_BUDGET = 1 << 20  # bytes of text bodies kept in all; the parser reads 100,000 characters
# Bytes kept of one header field (every field is kept, each cut to this): the parser reads
# 2,000 characters of a value, and a 10 MB header line must not hide the fields after it.
FIELD_BUDGET = 256 << 10
LONG_LINE = 64 << 10  # a line longer than this (no \n) is passed on in pieces: never a boundary
# Multiparts nested deeper than this are read as one opaque leaf: no mail needs it, and the
# stdlib parser, which reads the reduced copy, costs nesting depth x lines (and gives up near
# 1,000 levels).
MAX_DEPTH = 20

# The feed parser's test for a header line (email.feedparser.headerRE), on bytes, plus the
# obsolete "Name :" form that parse_message accepts (headers.normalise_head).
_HEADER_LINE = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]|[\041-\071\073-\176]+[ \t]+:")
_BOM = b"\xef\xbb\xbf"
_HEADERS, _BODY, _SKIP = "headers", "body", "skip"  # _SKIP: a preamble or an epilogue


@dataclass
class _Multipart:
    boundary: bytes  # a line "--boundary" or "--boundary--" (then spaces, tabs, \r) ends a part
    digest: bool  # multipart/digest: parts without Content-Type are messages


@dataclass
class _Leaf:
    keep: bool  # a text body the parser reads: kept while the budget lasts
    base64: bool
    attachment: tuple[str, str] | None  # (file name, content type) if it counts as one
    octets: int = 0  # body bytes, line ends included
    data_chars: int = 0  # base64: characters other than \r \n space tab
    pads: int = 0  # base64: "=" characters
    last_eol: int = 0  # the final line end, which belongs to the boundary after it

    def size(self) -> int:
        """Decoded size as `attachments.size_of` computes it: exact for base64, else the
        encoded length (quoted-printable and attached messages shrink a little when decoded)."""
        if self.base64:
            return self.data_chars * 3 // 4 - self.pads
        return max(self.octets - self.last_eol, 0)


@dataclass(frozen=True)
class Reduced:
    message: bytes  # headers + text bodies; parse this
    attachments: tuple[Attachment, ...]  # with the sizes of the bodies dropped
    problem: str = ""  # why the reading stopped (a bug or an input it cannot take): quarantine


class MimeReducer:
    """Feed the message in chunks of any size, then `close()` for the reduced message."""

    def __init__(self, text_budget: int = TEXT_BUDGET) -> None:
        self._out = bytearray()
        self._budget = text_budget
        self._stack: list[_Multipart] = []
        # boundary -> the stack levels using it, innermost last: a "--" line is looked up
        # once, not tried against every enclosing boundary (depth x lines)
        self._levels: dict[bytes, list[int]] = {}
        self._phase = _HEADERS
        self._header = bytearray()
        self._default_type = "text/plain"
        self._leaf: _Leaf | None = None
        self._parts = 0
        self._attachments: list[Attachment] = []
        self._carry = b""  # the incomplete last line of the previous chunk
        self._continued = False  # the previous piece was part of a line, not a whole one
        self._field = 0  # bytes kept of the header field being read
        self._kept_of_line = False  # some of the header line being read was kept
        self._started = False
        self._problem = ""

    def feed(self, chunk: bytes) -> None:
        """Never raises: a failure is kept for `close` (the message is quarantined with it),
        and the rest of the message is not read."""
        if self._problem:
            return
        try:
            self._feed(chunk)
        except Exception as exc:  # noqa: BLE001 (one message's problem, reported by close)
            self._fail(exc)

    def _feed(self, chunk: bytes) -> None:
        if not self._started:
            self._started = True
            chunk = chunk.removeprefix(_BOM)  # as headers.normalise_head
        data = self._carry + chunk if self._carry else chunk
        lines = data.split(b"\n")
        self._carry = lines.pop()
        for line in lines:
            self._line(line, True)
        if len(self._carry) > LONG_LINE:
            self._line(self._carry, False)
            self._carry = b""

    def close(self) -> Reduced:
        if not self._problem:
            try:
                self._close()
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)
        return Reduced(bytes(self._out), tuple(self._attachments), self._problem)

    def _close(self) -> None:
        if self._carry:
            self._line(self._carry, False)
            self._carry = b""
        if self._phase == _HEADERS and self._header:
            self._headers_done()
        self._end_leaf()

    def _fail(self, exc: Exception) -> None:
        self._problem = f"{type(exc).__name__}: {exc}"[:500]
        self._carry = b""

    # -- one line (without its \n; `eol` False for the last line or a piece of a long one)

    def _line(self, line: bytes, eol: bool) -> None:
        whole = not self._continued
        self._continued = not eol
        if whole and self._stack and line[:2] == b"--":
            found = self._delimiter(line)
            if found is not None:
                self._boundary(*found, line, eol)
                return
        if self._phase == _HEADERS:
            self._header_line(line, eol, whole)
        elif self._phase == _BODY:
            self._body_line(line, eol)

    def _delimiter(self, line: bytes) -> tuple[int, bool] | None:
        """(level, closing) of the innermost multipart whose delimiter `line` is, if any:
        "--" boundary ["--"] [spaces and tabs] ["\\r"], as the feed parser reads it."""
        bare = line[2:].removesuffix(b"\r").rstrip(b" \t")
        candidates = [(self._levels.get(bare), False)]
        if bare.endswith(b"--"):
            candidates.append((self._levels.get(bare[:-2]), True))
        found = [(levels[-1], closing) for levels, closing in candidates if levels]
        return max(found) if found else None

    def _pop_levels(self, keep: int) -> None:
        """Close every multipart above stack level `keep - 1`."""
        while len(self._stack) > keep:
            frame = self._stack.pop()
            levels = self._levels[frame.boundary]
            levels.pop()
            if not levels:
                del self._levels[frame.boundary]

    def _boundary(self, level: int, closing: bool, line: bytes, eol: bool) -> None:
        """A delimiter of the multipart at `level` ends whatever is open inside it."""
        if self._phase == _HEADERS:
            self._headers_done()
        self._end_leaf()
        frame = self._stack[level]
        self._pop_levels(level + 1)
        self._emit(line, eol)
        if closing:
            self._pop_levels(level)
            self._phase = _SKIP  # its epilogue, up to a boundary further out
        else:
            self._phase = _HEADERS
            self._default_type = "message/rfc822" if frame.digest else "text/plain"

    def _header_line(self, line: bytes, eol: bool, whole: bool) -> None:
        if whole and line in (b"", b"\r"):
            self._emit(line, eol)
            self._headers_done()
            return
        if whole and not _HEADER_LINE.match(line):
            self._headers_done()  # no empty line: this line already belongs to the body
            self._continued = False
            self._line(line, eol)
            return
        if whole and line[:1] not in (b" ", b"\t"):
            self._field = 0  # a new field; continuation lines add to the one before
        if whole:
            self._kept_of_line = False
        kept = line[:max(FIELD_BUDGET - self._field, 0)]
        self._field += len(kept)
        self._kept_of_line |= bool(kept)
        # a line past the field's budget is dropped whole: kept as an empty line, it would end
        # the header block, and what follows it (Message-ID, Content-Type) would become body
        if kept or (eol and self._kept_of_line):
            self._header += kept + b"\n" if eol else kept
            self._emit(kept, eol)

    def _headers_done(self) -> None:
        part = BytesHeaderParser(policy=policy.compat32).parsebytes(normalise_head(bytes(self._header)))
        self._header.clear()
        part.set_default_type(self._default_type)
        self._parts += 1
        boundary = part.get_boundary() if part.get_content_maintype() == "multipart" else None
        if boundary is not None and len(self._stack) < MAX_DEPTH:
            self._open_multipart(boundary, part.get_content_subtype() == "digest")
            return
        counted = is_attachment(part)
        self._leaf = _Leaf(
            keep=part.get_content_maintype() == "text" and not counted,
            base64=part.get("content-transfer-encoding", "").strip().lower() == "base64",
            attachment=(filename(part), part.get_content_type()) if counted and self._parts <= MAX_PARTS else None)
        self._phase = _BODY

    def _open_multipart(self, boundary: str, digest: bool) -> None:
        # raw 8-bit bytes come back as surrogate escapes: encoded back, they match the raw line;
        # a boundary decoded from RFC 2231 is matched in UTF-8
        mark = boundary.encode("utf-8", "surrogateescape")
        self._levels.setdefault(mark, []).append(len(self._stack))
        self._stack.append(_Multipart(mark, digest))
        self._phase = _SKIP  # the preamble

    def _body_line(self, line: bytes, eol: bool) -> None:
        leaf = self._leaf
        assert leaf is not None
        leaf.octets += len(line) + eol
        leaf.last_eol = (1 + line.endswith(b"\r")) if eol else 0
        if leaf.base64:
            leaf.data_chars += len(line) - line.count(b"\r") - line.count(b" ") - line.count(b"\t")
            leaf.pads += line.count(b"=")
        if leaf.keep:
            if len(line) + 1 <= self._budget:
                self._budget -= len(line) + 1
                self._emit(line, eol)
            else:
                leaf.keep = False  # the rest of this text is past what the parser reads

    def _end_leaf(self) -> None:
        leaf, self._leaf = self._leaf, None
        if leaf is not None and leaf.attachment is not None:
            self._attachments.append(Attachment(leaf.attachment[0], leaf.attachment[1], leaf.size()))

    def _emit(self, line: bytes, eol: bool) -> None:
        self._out += line
        if eol:
            self._out += b"\n"


def reduce_message(raw: bytes, text_budget: int = TEXT_BUDGET) -> Reduced:
    """The reduced message of whole bytes (for tests and small callers)."""
    reducer = MimeReducer(text_budget)
    reducer.feed(raw)
    return reducer.close()

