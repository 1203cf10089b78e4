"""The one exception the parse stage raises."""
from __future__ import annotations


class UnreadableMessage(Exception):
    """Raised when the bytes are not an email at all, so there is nothing to route."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
