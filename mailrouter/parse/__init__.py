"""Parse stage: raw RFC 5322 bytes -> Inquiry, as pure functions (no I/O but bundled data)."""
from __future__ import annotations

from mailrouter.parse.errors import UnreadableMessage
from mailrouter.parse.freemail import DEFAULT_FREE_MAIL_DOMAINS
from mailrouter.parse.message import parse_message

__all__ = ["DEFAULT_FREE_MAIL_DOMAINS", "UnreadableMessage", "parse_message"]
