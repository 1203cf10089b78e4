"""The persistent outbox: forwards are sent from the database, retried, and never lost.

A temporary SMTP failure (4xx, connection trouble) is retried with backoff until the row's
deadline; a permanent one (5xx) or a passed deadline makes the message UNDELIVERABLE, and its
copy is filed where the manager looks, with the reason.

The window for a second forward: the SMTP server accepted the message and the process died
before that was written down, one message per SMTP session (docs/ARCHITECTURE.md). Sending
writes no database rows (`send_due`, so it never waits for the batch transaction's lock);
each acceptance is appended to the mailbox's AcceptedLog and fsynced before the session sends
the next, and `record` commits a flush's outcomes together, synchronously. After a crash, the
log's forwards are recorded as sent instead of sent again. A disk that refuses those writes
(full, read-only, failing) stops the mailbox's sending until it takes them again.
"""
from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.orm import defer

from mailrouter import store
from mailrouter.act import ledger
from mailrouter.config.schema import Config, ServerConfig
from mailrouter.config.credentials import CredentialError, async_token_generator
from mailrouter.metrics import Metrics
from mailrouter.model import Outcome
from mailrouter.model import Clock
from mailrouter.act.forward import (WRAPPED, embedded_encoding, embedded_size, needs_8bitmime,
                                    seven_bit_forward, seven_bit_head, wrapped_chunks)
from mailrouter.act.smtpstream import body_options, greet, offers_8bitmime, send_streamed, size_refusal
from mailrouter.intake.spool import SEND_CHUNK, file_chunks, private_file, file_name_part, remove_file
from mailrouter.store import AssignmentRow, MessageRow, OutboxRow, table_of

log = logging.getLogger("mailrouter.outbox")
ITEMS_PER_EXTRA_SESSION = 10  # a few forwards go over one session; a queue spreads over more
# Then a new session: past 10 messages in one, Exim (smtp_accept_queue_per_connection's default)
# only queues the rest for its next queue run, 30 minutes away on Debian, instead of delivering.
MESSAGES_PER_SESSION = 10
DISK_RETRY = 5.0  # seconds between tries of a state disk that refused a write: one small append


class AcceptedLog:
    """Forwards the SMTP server accepted that the database does not record yet: one outbox
    id per line, each appended and fsynced as its 250 arrives, removed once `Outbox.record`
    has committed them. An id the disk refused is kept in memory for the life of the process
    (shared by every AcceptedLog on that path, so a reload keeps it): never sent again."""

    _unwritten: dict[Path, set[int]] = {}
    _folders: dict[Path, tuple[int, int] | None] = {}  # the spool folder as first written: see store.check_same_place
    _lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = path

    def _append(self, data: bytes) -> None:
        folder = self.path.parent
        with self._lock:
            first = self._folders.get(folder)
        store.check_same_place(str(folder), first)
        append_durably(self.path, data)
        if first is None:
            with self._lock:
                self._folders.setdefault(folder, store.place_of(str(folder)))

    def add(self, outbox_id: int) -> None:
        """Append `outbox_id` durably; on OSError it is remembered in memory, then raised."""
        try:
            self._append(b"%d\n" % outbox_id)
        except OSError:
            with self._lock:
                self._unwritten.setdefault(self.path, set()).add(outbox_id)
            raise

    def write_unwritten(self) -> None:
        """Put the ids held in memory on disk (a blank line if none: the disk is probed all
        the same); raises OSError while the disk still refuses."""
        with self._lock:
            held = sorted(self._unwritten.get(self.path, ()))
        self._append(b"".join(b"%d\n" % i for i in held) or b"\n")
        with self._lock:
            self._unwritten.get(self.path, set()).difference_update(held)

    def ids(self) -> set[int]:
        with self._lock:
            held = set(self._unwritten.get(self.path, ()))
            first = self._folders.get(self.path.parent)
        store.check_same_place(str(self.path.parent), first)  # an empty mount point knows no acceptance
        try:
            # what follows the last newline is an append a crash tore: not an acceptance
            lines = self.path.read_text().split("\n")[:-1]
            return held | {int(line) for line in lines if line.isdigit()}
        except FileNotFoundError:
            return held

    def clear(self, recorded: set[int]) -> None:
        """The database now records `recorded`: forget them, on disk and in memory."""
        with self._lock:
            self._unwritten.get(self.path, set()).difference_update(recorded)
        self.path.unlink(missing_ok=True)


def append_durably(path: Path, data: bytes) -> None:
    """Append whole lines and fsync; a new file's directory entry is fsynced too, or a power
    cut could lose the file with the data. An append the disk takes only part of raises, and
    its torn line is cut off again (or, after a crash, before the next append): a torn id
    would be read as another forward's."""
    created = not path.exists()
    try:
        if created:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with private_file(path, os.O_APPEND) as log_file:
            whole = _whole_lines_size(path)
            os.ftruncate(log_file.fileno(), whole)  # shrinking needs no free space
            try:
                _write_all(log_file, data)
            except OSError:
                os.ftruncate(log_file.fileno(), whole)
                raise
            os.fsync(log_file.fileno())
        if created:
            directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
    except OSError as exc:
        if exc.filename:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc  # write(2) and fsync(2) name no file


def _whole_lines_size(path: Path) -> int:
    """The file's size up to its last newline: what ends after it is a torn append."""
    data = path.read_bytes()
    return data.rfind(b"\n") + 1


def _write_all(log_file: BinaryIO, data: bytes) -> None:
    """write(2) on a filling disk writes what fits and returns a short count, no error: the
    rest is written on, so the disk's refusal raises (ENOSPC, EFBIG) instead of passing."""
    view = memoryview(data)
    while view:
        written = log_file.write(view)
        if not written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


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


def session_closed(result: SendResult) -> bool:
    """A 421 ends the session, not the message's chances: Exim answers it to the MAIL command past
    its per-session cap (smtp_accept_max_per_connection, 1,000 by default), and servers give it
    when busy or shutting down. Worth one try on a new session before counting a failure."""
    return not result.ok and result.error.startswith("421 ")


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


async def end_session(client: aiosmtplib.SMTP) -> None:
    """QUIT; a session the server already ended is only closed."""
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


class Outbox:
    def __init__(self, config: Config, sessions, clock: Clock = store.utcnow,
                 metrics: Metrics | None = None):
        self.config = config
        self.sessions = sessions
        self.clock = clock
        self.metrics = metrics or Metrics()
        # mailbox -> (the write that failed, when to try the disk again): no sending meanwhile
        self._stopped: dict[str, tuple[OSError, float]] = {}
        self._announce: dict[str, OSError] = {}  # stops that record() has yet to raise

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
        """Seconds until the next retry is due, for the worker's wait (while sending is stopped
        by the disk, no sooner than the next try of the disk)."""
        with self.sessions() as session:
            when = session.scalar(
                select(OutboxRow.next_attempt_at)
                .where(OutboxRow.mailbox == mailbox, OutboxRow.status == "pending")
                .order_by(OutboxRow.next_attempt_at).limit(1))
        if when is None:
            return None
        due = max(0.0, (when - self.clock()).total_seconds())
        if mailbox in self._stopped:
            due = max(due, self._stopped[mailbox][1] - time.monotonic())
        return due

    def flush(self, mailbox: str) -> int:
        """Send what is due for one mailbox and record the outcome; return how many went out."""
        return self.record(self.send_due(mailbox))

    def send_due(self, mailbox: str) -> list[tuple[OutboxRow, SendResult]]:
        """Send what is due without writing to the database (so a thread can send while
        another holds the write lock); `record` writes the outcome. What an interrupted
        flush got accepted (its AcceptedLog) is not sent again but reported as accepted, and
        nothing new is sent until the database has recorded it."""
        items = self.due(mailbox)
        if not items:
            return []
        accepted = self.accepted_log(mailbox)
        earlier = accepted.ids()
        results = [(item, SendResult(True)) for item in items if item.id in earlier]
        rest = [item for item in items if item.id not in earlier]
        if rest and not results and self._may_send(mailbox, accepted):
            results += asyncio.run(self._send_all(rest, accepted, mailbox))
        return results

    def record(self, results: list[tuple[OutboxRow, SendResult]]) -> int:
        """Mark accepted forwards sent (one synchronous transaction) and schedule or give up
        the rest. Raises the write that stopped sending (once per stop, for the log) and any
        database failure: the caller's round ends and is retried."""
        accepted = [item for item, result in results if result.ok]
        mailboxes = {item.mailbox for item, _result in results}
        # a failure to write raises from here: the accepted ids stay in the log (or in memory),
        # so send_due reports them again and sends nothing new before they are recorded
        if accepted:
            self._mark_sent(accepted)
        for item, result in results:
            if not result.ok:
                self._record_failure(item, result)
        for mailbox in mailboxes:
            self.accepted_log(mailbox).clear({item.id for item in accepted})  # the database says it all now
        for mailbox in mailboxes:
            if mailbox in self._announce:
                raise self._announce.pop(mailbox)
        return len(accepted)

    def _may_send(self, mailbox: str, accepted: AcceptedLog) -> bool:
        """Not while the disk refuses the writes that must follow each 250: once it is time
        to try again, a durable append to the accepted log tells."""
        if mailbox not in self._stopped:
            return True
        if time.monotonic() < self._stopped[mailbox][1]:
            return False
        try:
            accepted.write_unwritten()
        except OSError as exc:
            self._stop(mailbox, exc)
            return False
        del self._stopped[mailbox]
        log.info("%s: the state disk takes writes again; forwarding resumes", mailbox)
        return True

    def _stop(self, mailbox: str, exc: OSError) -> None:
        if mailbox not in self._stopped:
            self._announce[mailbox] = exc
        self._stopped[mailbox] = (exc, time.monotonic() + DISK_RETRY)

    def accepted_log(self, mailbox: str) -> AcceptedLog:
        return AcceptedLog(self.config.spool_dir / f"accepted-{file_name_part(mailbox)}.log")

    async def _send_all(self, items: list[OutboxRow], accepted: AcceptedLog,
                        mailbox: str) -> list[tuple[OutboxRow, SendResult]]:
        """Up to `smtp.connections` sessions at once: each forward waits for the server's 250,
        and a server that delivers before answering makes one session a queue."""
        lanes = max(1, min(self.config.smtp.connections, len(items) // ITEMS_PER_EXTRA_SESSION + 1))
        halt = asyncio.Event()  # the accepted log failed: every session stops after its current forward

        async def lane(part: list[OutboxRow]) -> list[tuple[OutboxRow, SendResult]]:
            try:
                return await self._send_lane(part, accepted, mailbox, halt)
            except BaseException:
                halt.set()  # e.g. the database unreadable on a full disk: the others finish their forward
                raise

        # every session ends before anything is raised: a session left running would be cancelled
        # mid-forward when asyncio.run returns (and logged as an unhandled exception)
        done = await asyncio.gather(*(lane(items[n::lanes]) for n in range(lanes)), return_exceptions=True)
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome  # what the other sessions had accepted is in the accepted log
        return [pair for outcome in done if not isinstance(outcome, BaseException) for pair in outcome]

    async def _send_lane(self, items: list[OutboxRow], accepted: AcceptedLog, mailbox: str,
                         halt: asyncio.Event) -> list[tuple[OutboxRow, SendResult]]:
        """Forwards left unsent by a halt get no result: they stay pending, unchanged."""
        try:
            client = smtp_client(self.config.smtp.server)
            await client.connect()
        except CredentialError as exc:  # e.g. password_command failing: temporary, to its deadline
            down = SendResult(False, False, str(exc))
            return [(item, down) for item in items]
        except (aiosmtplib.SMTPException, OSError) as exc:
            down = SendResult(False, False, classify_smtp_error(exc).error)
            return [(item, down) for item in items]  # the server being down is never the message's fault
        results = []
        carried = 0  # messages the current session has carried
        try:
            for item in items:
                if halt.is_set():
                    break
                if carried == MESSAGES_PER_SESSION:
                    await end_session(client)
                if not client.is_connected:  # _send_one opens a new session
                    carried = 0
                result = await self._send_one(client, item)
                if session_closed(result):  # aiosmtplib closed it too: the same forward on a new one
                    carried = 0
                    result = await self._send_one(client, item)
                carried += 1
                results.append((item, result))
                if result.ok and not self._accepted(accepted, item, mailbox):
                    halt.set()
        finally:
            await end_session(client)
        return results

    def _accepted(self, accepted: AcceptedLog, item: OutboxRow, mailbox: str) -> bool:
        """Write the 250 down durably before the session sends more; False if the disk refused
        (the id is then held in memory, so this process never sends it again)."""
        try:
            accepted.add(item.id)
            return True
        except OSError as exc:
            self._stop(mailbox, exc)
            return False

    async def _send_one(self, client: aiosmtplib.SMTP, item: OutboxRow) -> SendResult:
        try:
            if not client.is_connected:
                await client.connect()
            if item.spool_path:
                return await self._send_spooled(client, item)
            await greet(client)
            payload = self._payload(item)
            if item.kind == "forward" and not offers_8bitmime(client):
                payload = seven_bit_forward(payload)
            if refusal := await size_refusal(client, len(payload)):
                return SendResult(False, permanent=True, error=refusal)
            await client.sendmail(item.sender, [item.recipient], payload,
                                  mail_options=body_options(client, needs_8bitmime(payload)))
            return SendResult(True)
        except CredentialError as exc:  # a reconnect's OAuth2 token, say: not the message's fault
            return SendResult(False, False, str(exc))
        except (aiosmtplib.SMTPException, OSError) as exc:
            return classify_smtp_error(exc)

    async def _send_spooled(self, client: aiosmtplib.SMTP, item: OutboxRow) -> SendResult:
        """A big forward: its head, the original streamed from the spool file, its tail."""
        head, tail = self._head_and_tail(item)
        original = Path(item.spool_path or "")
        cte = embedded_encoding(head)
        await greet(client)
        if cte == "8bit" and not offers_8bitmime(client):
            head, cte = seven_bit_head(head), WRAPPED
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
        forwards = [item.message for item in items if item.kind == "forward" and item.message is not None]
        with store.durable_transaction(self.sessions) as session:  # guards against a second forward
            session.execute(table_of(OutboxRow).update().where(OutboxRow.id.in_(ids)).values(
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
            session.execute(table_of(OutboxRow).update().where(OutboxRow.id == item.id).values(
                attempts=attempts, last_error=result.error,
                next_attempt_at=now + timedelta(seconds=delay)))
        log.warning("%s #%d to %s deferred %.0fs (attempt %d): %s",
                    item.kind, item.id, item.recipient, delay, attempts, result.error)

    def _mark_failed(self, item: OutboxRow, attempts: int, reason: str) -> None:
        with self.sessions.begin() as session:
            session.execute(table_of(OutboxRow).update().where(OutboxRow.id == item.id).values(
                status="failed", attempts=attempts, last_error=reason, payload=None, tail=None))
        remove_file(item.spool_path)
        log.error("outbox #%d: %s", item.id, reason)

    def _give_up(self, item: OutboxRow, attempts: int, reason: str) -> None:
        """The forward will never arrive: end the assignment; a copy still in INBOX is filed
        for the manager (a reassigned one stays where it is, with the reason recorded)."""
        with self.sessions.begin() as session:
            session.execute(table_of(OutboxRow).update().where(OutboxRow.id == item.id).values(
                status="failed", attempts=attempts, last_error=reason, payload=None, tail=None))
            ledger.undeliverable(session.get(MessageRow, item.message), reason, self.config.folders.undeliverable,
                                 self.config.keyword_prefix + Outcome.UNDELIVERABLE.value)
            reps = [rep.id for rep in self.config.reps.values() if rep.email == item.recipient]
            session.execute(table_of(AssignmentRow).update().where(
                AssignmentRow.message == item.message, AssignmentRow.rep.in_(reps),
                AssignmentRow.ended_at.is_(None)).values(ended_at=self.clock(), end_reason="undeliverable"))
        remove_file(item.spool_path)
        log.error("message #%d: %s", item.message, reason)
