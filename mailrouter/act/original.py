"""The original message, in memory or in a spool file, behind one small interface.

Admission, Assign/, reassignment, `explain` and `dry-run` take an `Original` and never ask
which kind it is: each kind knows its identity (sha256, content key, size), how it is parsed
(a spooled one from its reduced copy, with the attachments its scan found) and how a forward
carries it (whole, or as a head and tail around the file the outbox streams).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Callable, Protocol

import jinja2

from mailrouter.act.forward import ForwardSpec, build_forward, forward_frame
from mailrouter.intake.fingerprint import content_key, raw_sha256, written_message_id
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.intake.spool import SpooledMessage, is_referenced, spooled_boundary
from mailrouter.model import Decision, Inquiry, ParseSettings
from mailrouter.parse.process import Parsed, parse_one

ParseBytes = Callable[[bytes, ParseSettings], Parsed]


class Original(Protocol):
    @property
    def sha256(self) -> str: ...

    @property
    def content_key(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def message_id(self) -> str:
        """The Message-ID as written, without a parse (for a message not parsed again)."""
        ...

    def parse(self, settings: ParseSettings, parse: ParseBytes = parse_one) -> Parsed:
        """`parse`: the router's bounded parse (the parser process, daemon.parse_timeout)."""
        ...

    def forward(self, inquiry: Inquiry, decision: Decision, spec: ForwardSpec, env: jinja2.Environment,
                now: datetime) -> dict[str, object]:
        """The outbox row's content for a forward of this original."""
        ...

    def release(self, sessions: sessionmaker[Session]) -> None:
        """Drop our own copy unless a pending forward still needs it."""
        ...


@dataclass(frozen=True)
class InMemory:
    raw: bytes

    @cached_property
    def sha256(self) -> str:
        return raw_sha256(self.raw)

    @cached_property
    def content_key(self) -> str:
        return content_key(self.raw)

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def message_id(self) -> str:
        return written_message_id(self.raw)

    def parse(self, settings: ParseSettings, parse: ParseBytes = parse_one) -> Parsed:
        return parse(self.raw, settings)

    def forward(self, inquiry: Inquiry, decision: Decision, spec: ForwardSpec, env: jinja2.Environment,
                now: datetime) -> dict[str, object]:
        return {"payload": build_forward(self.raw, inquiry, decision, spec, env, now)}

    def release(self, sessions: sessionmaker[Session]) -> None:
        pass  # garbage collected


@dataclass(frozen=True)
class Spooled:
    """A big message in a spool file (intake/spool.py), never read into memory whole."""

    message: SpooledMessage

    @property
    def sha256(self) -> str:
        return self.message.sha256

    @property
    def content_key(self) -> str:
        return self.message.content_key

    @property
    def size(self) -> int:
        return self.message.size

    @property
    def message_id(self) -> str:
        return written_message_id(self.message.reduced)  # the reduced copy keeps every header block

    def parse(self, settings: ParseSettings, parse: ParseBytes = parse_one) -> Parsed:
        """From the reduced copy (headers and text), with the attachments and fingerprints the
        scan found (the copy has the bodies dropped)."""
        m = self.message
        if m.problem:  # quarantined, not retried: the same bytes would fail the same way
            return Parsed(None, f"unreadable MIME structure: {m.problem}", m.sha256, m.content_key, m.size)
        parsed = parse(m.reduced, settings)
        inquiry = parsed.inquiry and replace(parsed.inquiry, attachments=m.attachments)
        return replace(parsed, inquiry=inquiry, sha256=m.sha256, content_key=m.content_key, size=m.size)

    def forward(self, inquiry: Inquiry, decision: Decision, spec: ForwardSpec, env: jinja2.Environment,
                now: datetime) -> dict[str, object]:
        """The bytes before the original (`payload`), after it (`tail`) and its file."""
        m = self.message
        head, tail = forward_frame(inquiry, decision, spec, env, now, m.transfer_encoding,
                                   lambda alternative: spooled_boundary(m, alternative))
        return {"payload": head, "tail": tail, "spool_path": str(m.path)}

    def release(self, sessions: sessionmaker[Session]) -> None:
        """The file stays only while a pending forward streams it (not for a duplicate, an
        unrecognised message, or one answered before its reassignment)."""
        if not is_referenced(sessions, self.message.path):
            self.message.path.unlink(missing_ok=True)
