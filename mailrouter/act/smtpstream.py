"""Send a message too big to hold in memory: MAIL, RCPT, then DATA written chunk by chunk.

aiosmtplib (5.x) sends DATA from one bytes object, which it copies three times on the way
(line endings, dot-stuffing, the final dot). Here the same transformation (`DotStuffer`) runs
on each chunk as it is read from the spool file, and the connection's flow control (the
protocol's drain, as asyncio's StreamWriter uses it) keeps at most a chunk or so in flight.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable

import aiosmtplib
from aiosmtplib import SMTPDataError, SMTPResponse
from aiosmtplib.typing import SMTPStatus

# aiosmtplib.protocol.LINE_ENDINGS_REGEX, applied where a chunk's end can't hide a CR LF pair
_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")
_DOT_AFTER_LINE_END = re.compile(rb"(?<=\n)\.")


class DotStuffer:
    """aiosmtplib's DATA transform (`normalize_message_line_endings`, then a dot doubled at the
    start of each line, then ".\\r\\n"), applied to a message given in chunks of any size."""

    def __init__(self) -> None:
        self._cr = False  # the last chunk ended with \r: CR LF or lone CR is decided by the next
        self._line_start = True  # what was written so far ends a line (or nothing was written)
        self._empty = True

    def feed(self, chunk: bytes) -> bytes:
        if self._cr:
            chunk = b"\r" + chunk
        self._cr = chunk.endswith(b"\r")
        if self._cr:
            chunk = chunk[:-1]
        if not chunk:
            return b""
        out = _DOT_AFTER_LINE_END.sub(b"..", _LINE_END.sub(b"\r\n", chunk))
        if self._line_start and out[:1] == b".":
            out = b"." + out
        self._line_start, self._empty = out.endswith(b"\n"), False
        return out

    def finish(self) -> bytes:
        """The end: a CR LF if the message lacks one, and the lone dot."""
        end = b"\r\n" if self._cr or self._empty or not self._line_start else b""
        self._cr, self._line_start, self._empty = False, True, True
        return end + b".\r\n"


async def greet(client: aiosmtplib.SMTP) -> None:
    """EHLO (HELO for an old server) unless done: what the server offers is known after it."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()  # an old server: no extensions, so no SIZE to respect


def offers_8bitmime(client: aiosmtplib.SMTP) -> bool:
    return client.supports_extension("8bitmime")


async def size_refusal(client: aiosmtplib.SMTP, size: int) -> str | None:
    """Why the server will refuse a message of `size` octets (its EHLO SIZE), or None."""
    await greet(client)
    limit = client.esmtp_extensions.get("size", "").strip()
    if limit.isdigit() and int(limit) > 0 and size > int(limit):
        return (f"the forward is {size:,} bytes, over the SMTP server's limit of {int(limit):,} "
                "(EHLO SIZE): not sent")
    return None


def body_options(client: aiosmtplib.SMTP, eight_bit: bool) -> list[str]:
    """MAIL FROM parameters for the body: BODY=8BITMIME (RFC 6152) for 8-bit data when the
    server offers it. (To a server without it the outbox sends forwards 7-bit: the original
    base64-wrapped, act/forward.py seven_bit_forward; forwards never contain "binary" data.)"""
    return ["BODY=8BITMIME"] if eight_bit and client.supports_extension("8bitmime") else []


async def send_streamed(client: aiosmtplib.SMTP, sender: str, recipient: str,
                        pieces: Iterable[bytes], size: int, timeout: float | None,
                        eight_bit: bool = False) -> SMTPResponse:
    """One mail transaction with the message read from `pieces` as it goes out.

    A failure after DATA started leaves the session in an unknown state: the connection is
    closed then (the outbox reconnects for the next message).
    """
    options = [f"SIZE={size}"] if client.supports_extension("size") else []
    options += body_options(client, eight_bit)
    try:
        await client.mail(sender, options=options)
        await client.rcpt(recipient)
    except aiosmtplib.SMTPResponseException:
        await _reset(client)
        raise
    response = await client.execute_command(b"DATA")
    if response.code != SMTPStatus.start_input:
        await _reset(client)
        raise SMTPDataError(response.code, response.message)
    try:
        return await _write_data(client, pieces, timeout)
    except BaseException:
        client.close()
        raise


async def _write_data(client: aiosmtplib.SMTP, pieces: Iterable[bytes], timeout: float | None) -> SMTPResponse:
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    # Listen before writing: a server may answer (and hang up) before the message ends.
    reply = asyncio.ensure_future(protocol.read_response(timeout=None))
    try:
        stuffer, complete = DotStuffer(), True
        for piece in pieces:
            if reply.done():
                complete = False
                break
            protocol.write(stuffer.feed(piece))
            await asyncio.wait_for(protocol._drain_helper(), timeout)
        if complete:
            protocol.write(stuffer.finish())
        response = await asyncio.wait_for(reply, timeout)
    finally:
        reply.cancel()
    if response.code != SMTPStatus.completed or not complete:
        raise SMTPDataError(response.code, response.message)
    return response


async def _reset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        pass
