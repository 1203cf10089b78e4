"""What every mail the router writes itself (notices, digests) carries: one header policy.

Forwards get the same marks in act/forward.py; the rest of issue 11 item 4 (one composer for
forwards and notices, sender mailbox and retry deadline here too) is not done yet.
"""
from __future__ import annotations

from email.message import EmailMessage

from mailrouter.marker import signed
from mailrouter.model import ROUTER_HEADER


def mark_automatic(msg: EmailMessage, router_value: str, key: bytes) -> None:
    """RFC 3834 Auto-Submitted for well-behaved responders, X-Auto-Response-Suppress for Exchange
    (which ignores RFC 3834), and the router header, signed over the Message-ID (set it first),
    so the router knows its own mail and nobody else can claim to be it."""
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg[ROUTER_HEADER] = signed(key, str(msg["Message-ID"] or ""), router_value)
