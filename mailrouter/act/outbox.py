"""The persistent outbox: forwards are sent from the database, retried, and never lost.

A temporary SMTP failure (4xx, connection trouble) is retried with backoff until the row's
deadline; a permanent one (5xx) or a passed deadline makes the message UNDELIVERABLE, and its
copy is filed where the manager looks, with the reason.

The one window for a second forward: the SMTP server accepted the message and the process
died before that was written down. The retry then sends it again, with the same Message-ID.
Sending writes no database rows (`send_due`, so it never waits for the batch transaction's
lock); each acceptance is appended to the mailbox's AcceptedLog at once, and `record` writes
a flush's outcomes to the database together. After a crash, the log's forwards are recorded
as sent instead of sent again.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.orm import defer

from mailrouter import store
from mailrouter.act import ledger
from mailrouter.config.schema import Config, ServerConfig
from mailrouter.config.credentials import async_token_generator
from mailrouter.metrics import Metrics
from mailrouter.model import Outcome
from mailrouter.model import Clock
from mailrouter.act.forward import (WRAPPED, embedded_encoding, embedded_size, needs_8bitmime,
                                    wrapped_chunks)
from mailrouter.act.smtpstream import body_options, send_streamed, size_refusal
from mailrouter.intake.spool import SEND_CHUNK, file_chunks, private_file, file_name_part, remove_file
from mailrouter.store import AssignmentRow, MessageRow, OutboxRow

log = logging.getLogger("mailrouter.outbox")
ITEMS_PER_EXTRA_SESSION = 10  # a few forwards go over one session; a queue spreads over more


class AcceptedLog:
    """Forwards the SMTP server accepted that the database does not record yet: one outbox
    id per line, appended as each 250 arrives (the kernel keeps a write(2) when the process
    dies), removed once `Outbox.record` has committed them."""

    def __init__(self, path: Path):
        self.path = path

    def add(self, outbox_id: int) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with private_file(self.path, os.O_APPEND) as log_file:
            log_file.write(b"%d\n" % outbox_id)

    def ids(self) -> set[int]:
        try:
            return {int(line) for line in self.path.read_text().split() if line.isdigit()}
        except FileNotFoundError:
            return set()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class SendResult:
    ok: bool
    permanent: bool = False
    error: str = ""


def classify_smtp_error(exc: Exception) -> SendResult:
    """5xx answers are permanent; everything else (4xx, timeouts, refused connections) is not."""
    code = getattr(exc, "code", None)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        code = exc.recipients[0].code
        exc = exc.recipients[0]
    message = getattr(exc, "message", "") or str(exc) or type(exc).__name__
    text = f"{code} {message}" if code else f"{type(exc).__name__}: {message}"
    return SendResult(False, permanent=isinstance(code, int) and 500 <= code < 600, error=text)


def smtp_client(server: ServerConfig) -> aiosmtplib.SMTP:
    context = None
    if server.tls != "none":
        context = ssl.create_default_context(cafile=server.ca_file)  # verifies by default
    login: dict = {}
    if server.user and server.credentials.kind == "xoauth2":
        login = {"username": server.user, "oauth_token_generator": async_token_generator(server.credentials)}
    elif server.user:
        login = {"username": server.user, "password": server.credentials.get()}
    return aiosmtplib.SMTP(
        hostname=server.host, port=server.port, timeout=server.timeout,
        use_tls=server.tls == "implicit", start_tls=server.tls == "starttls",
        tls_context=context, **login)


class Outbox:
    def __init__(self, config: Config, sessions, clock: Clock = store.utcnow,
                 metrics: Metrics | None = None):
        self.config = config
        self.sessions = sessions
        self.clock = clock
        self.metrics = metrics or Metrics()

    def due(self, mailbox: str) -> list[OutboxRow]:
        with self.sessions() as session:
            # payloads stay in the database until each is sent: a batch of big forwards must
            # not be in memory at once
            return list(session.scalars(select(OutboxRow).options(
                defer(OutboxRow.payload), defer(OutboxRow.tail)).where(
                OutboxRow.mailbox == mailbox, OutboxRow.status == "pending",
                OutboxRow.next_attempt_at <= self.clock()).order_by(OutboxRow.id)))

    def _payload(self, item: OutboxRow) -> bytes:
        with self.sessions() as session:
            return session.scalar(select(OutboxRow.payload).where(OutboxRow.id == item.id)) or b""

    def _head_and_tail(self, item: OutboxRow) -> tuple[bytes, bytes]:
        with self.sessions() as session:
            head, tail = session.execute(select(OutboxRow.payload, OutboxRow.tail)
                                         .where(OutboxRow.id == item.id)).one()
        return head or b"", tail or b""

    def next_due_in(self, mailbox: str) -> float | None:
        """Seconds until the next retry is due, for the worker's wait."""
        with self.sessions() as session:
            when = session.scalar(
                select(OutboxRow.next_attempt_at)
                .where(OutboxRow.mailbox == mailbox, OutboxRow.status == "pending")
                .order_by(OutboxRow.next_attempt_at).limit(1))
        return None if when is None else max(0.0, (when - self.clock()).total_seconds())

    def flush(self, mailbox: str) -> int:
        """Send what is due for one mailbox and record the outcome; return how many went out."""
        return self.record(self.send_due(mailbox))

    def send_due(self, mailbox: str) -> list[tuple[OutboxRow, SendResult]]:
        """Send what is due without writing to the database (so a thread can send while
        another holds the write lock); `record` writes the outcome. What an interrupted
        flush got accepted (its AcceptedLog) is not sent again but reported as accepted."""
        items = self.due(mailbox)
        if not items:
            return []
        accepted = self.accepted_log(mailbox)
        earlier = accepted.ids()
        results = [(item, SendResult(True)) for item in items if item.id in earlier]
        rest = [item for item in items if item.id not in earlier]
        if rest:
            results += asyncio.run(self._send_all(rest, accepted))
        return results

    def record(self, results: list[tuple[OutboxRow, SendResult]]) -> int:
        """Mark accepted forwards sent (one transaction) and schedule or give up the rest."""
        accepted = [item for item, result in results if result.ok]
        if accepted:
            self._mark_sent(accepted)
        for item, result in results:
            if not result.ok:
                self._record_failure(item, result)
        for mailbox in {item.mailbox for item, _result in results}:
            self.accepted_log(mailbox).clear()  # the database says it all now
        return len(accepted)

    def accepted_log(self, mailbox: str) -> AcceptedLog:
        return AcceptedLog(self.config.spool_dir / f"accepted-{file_name_part(mailbox)}.log")

    async def _send_all(self, items: list[OutboxRow],
                        accepted: AcceptedLog) -> list[tuple[OutboxRow, SendResult]]:
        """Up to `smtp.connections` sessions at once: each forward waits for the server's 250,
        and a server that delivers before answering makes one session a queue."""
        lanes = max(1, min(self.config.smtp.connections, len(items) // ITEMS_PER_EXTRA_SESSION + 1))
        done = await asyncio.gather(*(self._send_lane(items[lane::lanes], accepted) for lane in range(lanes)))
        return [pair for lane in done for pair in lane]

    async def _send_lane(self, items: list[OutboxRow],
                         accepted: AcceptedLog) -> list[tuple[OutboxRow, SendResult]]:
        client = smtp_client(self.config.smtp.server)
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            down = SendResult(False, False, classify_smtp_error(exc).error)
            return [(item, down) for item in items]  # the server being down is never the message's fault
        results = []
        try:
            for item in items:
                result = await self._send_one(client, item)
                if result.ok:
                    accepted.add(item.id)
                results.append((item, result))
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                pass
        return results

    async def _send_one(self, client: aiosmtplib.SMTP, item: OutboxRow) -> SendResult:
        try:
            if not client.is_connected:
                await client.connect()
            if item.spool_path:
                return await self._send_spooled(client, item)
            payload = self._payload(item)
            if refusal := await size_refusal(client, len(payload)):
                return SendResult(False, permanent=True, error=refusal)
            await client.sendmail(item.sender, [item.recipient], payload,
                                  mail_options=body_options(client, needs_8bitmime(payload)))
            return SendResult(True)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return classify_smtp_error(exc)

    async def _send_spooled(self, client: aiosmtplib.SMTP, item: OutboxRow) -> SendResult:
        """A big forward: its head, the original streamed from the spool file, its tail."""
        head, tail = self._head_and_tail(item)
        original = Path(item.spool_path or "")
        cte = embedded_encoding(head)
        try:
            size = len(head) + embedded_size(original.stat().st_size, cte) + len(tail)
        except FileNotFoundError:
            return SendResult(False, permanent=True, error=f"the original's spool file {original} is gone "
                              "and could not be fetched again; the copy stays in the shared mailbox")
        if refusal := await size_refusal(client, size):
            return SendResult(False, permanent=True, error=refusal)
        chunks = file_chunks(original, SEND_CHUNK)
        pieces = itertools.chain((head,), wrapped_chunks(chunks) if cte == WRAPPED else chunks, (tail,))
        await send_streamed(client, item.sender, item.recipient, pieces, size, self.config.smtp.server.timeout,
                            eight_bit=cte == "8bit")
        return SendResult(True)

    def _mark_sent(self, items: list[OutboxRow]) -> None:
        now = self.clock()
        ids = [item.id for item in items]
        forwards = [item.message for item in items if item.kind == "forward"]
        with self.sessions.begin() as session:
            session.execute(OutboxRow.__table__.update().where(OutboxRow.id.in_(ids)).values(
                status="sent", sent_at=now, payload=None, tail=None, attempts=OutboxRow.attempts + 1))
            if forwards:
                ledger.sent(session, forwards, now)
                for received in session.scalars(select(MessageRow.received_at).where(MessageRow.id.in_(forwards))):
                    self.metrics.forward_accepted((now - received).total_seconds())
        for item in items:
            remove_file(item.spool_path)
            log.debug("%s #%d accepted for %s", item.kind, item.id, item.recipient)

    def _record_failure(self, item: OutboxRow, result: SendResult) -> None:
        now = self.clock()
        attempts = item.attempts + 1
        if result.permanent or now >= item.deadline:
            why = "permanent failure" if result.permanent else "retry deadline passed"
            reason = f"{item.kind} to {item.recipient} failed ({why}): {result.error}"
            if item.kind == "forward":
                self._give_up(item, attempts, reason)
            else:
                self._mark_failed(item, attempts, reason)
            return
        delay = min(self.config.smtp.retry_max, self.config.smtp.retry_initial * 2 ** (attempts - 1))
        with self.sessions.begin() as session:
            session.execute(OutboxRow.__table__.update().where(OutboxRow.id == item.id).values(
                attempts=attempts, last_error=result.error,
                next_attempt_at=now + timedelta(seconds=delay)))
        log.warning("%s #%d to %s deferred %.0fs (attempt %d): %s",
                    item.kind, item.id, item.recipient, delay, attempts, result.error)

    def _mark_failed(self, item: OutboxRow, attempts: int, reason: str) -> None:
        with self.sessions.begin() as session:
            session.execute(OutboxRow.__table__.update().where(OutboxRow.id == item.id).values(
                status="failed", attempts=attempts, last_error=reason, payload=None, tail=None))
        remove_file(item.spool_path)
        log.error("outbox #%d: %s", item.id, reason)

    def _give_up(self, item: OutboxRow, attempts: int, reason: str) -> None:
        """The forward will never arrive: end the assignment; a copy still in INBOX is filed
        for the manager (a reassigned one stays where it is, with the reason recorded)."""
        with self.sessions.begin() as session:
            session.execute(OutboxRow.__table__.update().where(OutboxRow.id == item.id).values(
                status="failed", attempts=attempts, last_error=reason, payload=None, tail=None))
            ledger.undeliverable(session.get(MessageRow, item.message), reason, self.config.folders.undeliverable,
                                 self.config.keyword_prefix + Outcome.UNDELIVERABLE.value)
            reps = [rep.id for rep in self.config.reps.values() if rep.email == item.recipient]
            session.execute(AssignmentRow.__table__.update().where(
                AssignmentRow.message == item.message, AssignmentRow.rep.in_(reps),
                AssignmentRow.ended_at.is_(None)).values(ended_at=self.clock(), end_reason="undeliverable"))
        remove_file(item.spool_path)
        log.error("message #%d: %s", item.message, reason)
