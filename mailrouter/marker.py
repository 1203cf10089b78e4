"""The router's signed marker: how it knows its own mail when it comes back (pure, no I/O).

Every message the router sends carries `X-Mailrouter: <what>; sig=<mac>`, an HMAC-SHA256 under
the installation's key (runtime/routerkey.py) over the message's Message-ID and the marker's
text. Anyone can write the header; only the router can write a signature that verifies, so
mail with the header and no valid signature is not taken for the router's own.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE = "sig"
_MAC_CHARS = 32  # 192 bits of the MAC, base64url: ample against guessing, short in a header


def _normal(text: str) -> str:
    # Header folding and a reader's unfolding may change white space, never the words.
    return " ".join(text.split())


def _mac(key: bytes, message_id: str, what: str) -> str:
    data = f"{_normal(message_id)}\n{_normal(what)}".encode("utf-8", "surrogateescape")
    digest = hmac.new(key, data, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:_MAC_CHARS]


def signed(key: bytes, message_id: str, what: str) -> str:
    """The marker's value: `what` (e.g. "forward; rule=eu; rep=zhang") and its signature."""
    return f"{_normal(what)}; {SIGNATURE}={_mac(key, message_id, what)}"


def forgery(key: bytes, message_id: str, value: str) -> str | None:
    """None when `value` is a marker this key signed for this Message-ID; else why not."""
    what, sep, mac = _normal(value).rpartition(f"; {SIGNATURE}=")
    if not sep:
        return "it carries no signature (forged, or sent before markers were signed)"
    if not hmac.compare_digest(mac.strip(), _mac(key, message_id, what)):
        return "its signature does not verify (forged, or signed by another installation)"
    return None
