"""Parse stage: raw RFC 5322 bytes -> Inquiry, as pure functions (no I/O but bundled data)."""
from __future__ import annotations

from .errors import UnreadableMessage
from .freemail import DEFAULT_FREE_MAIL_DOMAINS
from .message import parse_message

__all__ = ["DEFAULT_FREE_MAIL_DOMAINS", "UnreadableMessage", "parse_message"]
