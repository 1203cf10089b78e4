"""Seeing the reps' replies: read Sent (or journal) folders and stop the first-reply clock.

A first reply is the earliest outgoing message after assignment that is addressed to the
buyer, or whose In-Reply-To/References name the inquiry or its forward. The matching is pure
(`Outgoing`, `is_reply_to`); the watcher thread only reads folders onwards from a cursor kept
in the database, so a restart reads on where it stopped and nothing is counted twice.
"""
from __future__ import annotations

import email
import email.policy
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailrouter.config.credentials import CredentialError
from mailrouter.config.schema import Config
from mailrouter.intake.health import Link
from mailrouter.intake.imap import ImapError, ImapSettings, Mailbox, keep_serving, settings_for
from mailrouter.lease import Lease, NoLease, lease_for, work_while_held
from mailrouter.metrics import Metrics
from mailrouter.parse import headers
from mailrouter.model import Clock
from mailrouter.sla.clock import reply_clock_start
from mailrouter.sla.config import ReplySource
from mailrouter.store import AssignmentRow, MessageRow, SentCursorRow, utcnow

log = logging.getLogger("mailrouter.replies")

# Sent folders by name when the server marks none \Sent (RFC 6154), most common first.
SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "Sent Mail", "INBOX/Sent", "[Gmail]/Sent Mail",
              "Gesendet", "Gesendete Elemente", "Gesendete Objekte", "Éléments envoyés",
              "Messages envoyés", "Enviados", "Elementos enviados", "Posta inviata", "Inviati",
              "Verzonden items", "Отправленные", "已发送", "已发送邮件", "已傳送", "送信済み")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class Outgoing:
    """One message a rep sent, as far as the clock needs it."""

    message_id: str
    sender: str  # From, lower-cased
    recipients: frozenset[str]  # To, Cc, Bcc (a journal copy may carry Bcc), lower-cased
    references: frozenset[str]  # In-Reply-To and References ids, "<...>"
    sent_at: datetime


def read_outgoing(header: bytes, fallback_time: datetime | None) -> Outgoing | None:
    """Parse the header block of a sent message; None if it names no recipient at all."""
    msg = email.message_from_bytes(header, policy=email.policy.compat32)
    recipients = frozenset(addr for _name, addr in headers.addresses(msg, "to", "cc", "bcc"))
    if not recipients:
        return None
    refs = " ".join(headers.header_text(msg, n) for n in ("in-reply-to", "references"))
    return Outgoing(
        message_id=headers.message_id(msg),
        sender=headers.first_address(msg, "from")[1],
        recipients=recipients,
        references=frozenset(_MESSAGE_ID.findall(refs)),
        sent_at=headers.date(msg) or fallback_time or utcnow(),
    )


def is_reply_to(out: Outgoing, customer: str, ids: Iterable[str | None], assigned_at: datetime,
                suspect: str | None = None) -> bool:
    """The rule for a first reply (pure). `suspect` is a Reply-To the forward did not use
    (decide/trust.py): a reply addressed there, and not to the customer, answers whoever
    wrote that header, so naming the inquiry is not enough for it."""
    if out.sent_at < assigned_at - timedelta(seconds=1):  # client clocks are a little off
        return False
    if customer in out.recipients:
        return True
    return bool(out.references & set(filter(None, ids))) and not (suspect and suspect in out.recipients)


def find_sent_folder(folders: list[tuple[frozenset[str], str]], configured: str | None) -> str | None:
    """Configured name first, then the folder marked \\Sent, then a known localised name."""
    names = {name for _flags, name in folders}
    if configured:
        return configured if configured in names else None
    marked = [name for flags, name in folders if "\\Sent" in flags]
    if marked:
        return marked[0]
    lowered = {name.lower(): name for name in names}
    return next((lowered[n.lower()] for n in SENT_NAMES if n.lower() in lowered), None)


class ReplyRecorder:
    """Stops the clock of every open assignment an outgoing message answers."""

    def __init__(self, config: Config, sessions, clock: Clock = utcnow, on_collision=None,
                 metrics: Metrics | None = None):
        self.config = config
        self.sessions = sessions
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.on_collision = on_collision  # called with (session, outgoing, rep) for 撞单 checks
        self.rep_by_address = {rep.email: rep.id for rep in config.reps.values()}

    def record(self, out: Outgoing, rep_hint: str | None) -> int:
        """Record `out`; return how many assignments it answered first."""
        rep = self.rep_by_address.get(out.sender) or rep_hint
        with self.sessions.begin() as session:
            answered = 0
            for assignment, original_id, arrived_at in self._open_candidates(session, out):
                ids = (assignment.forward_message_id, original_id)
                if is_reply_to(out, assignment.customer, ids, assignment.assigned_at,
                               assignment.suspect_reply_to):
                    self._stop_clock(assignment, out, rep, arrived_at)
                    answered += 1
            if self.on_collision and rep:
                self.on_collision(session, out, rep)
        return answered

    def _open_candidates(self, session: Session, out: Outgoing) -> list[tuple[AssignmentRow, str, datetime]]:
        refs = list(out.references)
        rows = session.execute(
            select(AssignmentRow, MessageRow.message_id, MessageRow.received_at)
            .join(MessageRow, MessageRow.id == AssignmentRow.message)
            .where(AssignmentRow.first_reply_at.is_(None), AssignmentRow.ended_at.is_(None),
                   or_(AssignmentRow.customer.in_(list(out.recipients)),
                       AssignmentRow.forward_message_id.in_(refs),
                       MessageRow.message_id.in_(refs))))
        return [(a, mid, arrived) for a, mid, arrived in rows]

    def _stop_clock(self, assignment: AssignmentRow, out: Outgoing, rep: str | None, arrived_at: datetime) -> None:
        calendar = self.config.sla.calendar_for(assignment.team)
        start = reply_clock_start(assignment.how, assignment.reassigned_from, assignment.assigned_at, arrived_at)
        end = max(out.sent_at, assignment.assigned_at)
        assignment.first_reply_at = end
        assignment.reply_message_id = out.message_id[:500]
        assignment.replied_by = rep
        assignment.reply_seconds = (end - start).total_seconds()
        assignment.reply_business_seconds = calendar.business_seconds_between(start, end)
        if assignment.due_at and end > assignment.due_at:
            self.metrics.sla_breached()
        log.info("reply %s from %s to %s answers assignment #%d of %s after %.0fs (%.0fs business)",
                 out.message_id or "(no Message-ID)", rep or out.sender, assignment.customer,
                 assignment.id, assignment.rep, assignment.reply_seconds,
                 assignment.reply_business_seconds)


class ReplyWatcher:
    """Reads one reply source onwards from its cursor, every poll_interval seconds."""

    def __init__(self, source: ReplySource, config: Config, recorder: ReplyRecorder,
                 stop: threading.Event, settings: ImapSettings | None = None, link: Link | None = None):
        self.source = source
        self.link = link or Link(f"reply source {source.name}")  # says when it is not connected, and why
        self.config = config
        self.recorder = recorder
        self.stop = stop
        self.settings = settings  # a fixed login; None: from the config at each connection
        self.rounds = 0
        self._lease: Lease = NoLease(f"reply_source {source.name}", recorder.sessions)  # run() takes the real one

    def rebuild(self, config: Config, recorder: ReplyRecorder) -> None:
        """Use a recorder built from a reloaded config. One reference: each record() call
        sees either the old recorder or the new one, never a mix."""
        self.config, self.recorder = config, recorder
        # a changed login (a fixed password) takes effect on the next connection
        self.source = next((s for s in config.sla.reply_sources if s.name == self.source.name), self.source)

    def _login(self) -> ImapSettings:
        if self.settings is not None:
            return self.settings
        try:
            return reply_settings(self.source, self.config)
        except CredentialError as exc:  # a password command failing: retried like a lost connection
            raise ImapError(str(exc)) from None

    def run(self) -> None:
        """Read the source while this instance holds its lease (lease.py), so two instances on
        one database never read the same Sent folder at once."""
        self._lease = lease_for(f"reply_source {self.source.name}", self.config.database, self.recorder.sessions)
        work_while_held(self._lease, f"reply source {self.source.name}",
                        lambda: keep_serving(self.source.name, self._serve, self.stop, link=self.link), self.stop)

    def _serve(self) -> None:
        conn = Mailbox.connect(self._login())
        self.link.connected()
        try:
            folder = self._folder(conn)
            while not self.stop.is_set():
                if not self._lease.held(clean=True):  # lost or handed over (between rounds: clean)
                    return
                self.read_new(conn, folder)
                self.rounds += 1
                self.stop.wait(self.source.poll_interval)
        finally:
            conn.logout()

    def _folder(self, conn: Mailbox) -> str:
        if self.source.kind == "journal":
            return self.source.folder or "INBOX"
        folder = find_sent_folder(conn.folders_with_flags(), self.source.folder)
        if folder is None:
            raise ImapError(f"no Sent folder found for {self.source.name}; set folder = \"...\"")
        return folder

    def read_new(self, conn: Mailbox, folder: str) -> None:
        uidvalidity = conn.select_folder(folder, readonly=True)
        key = f"{self.source.name}:{folder}"
        last = self._cursor(key, uidvalidity)
        uids = conn.uids_after(last)
        for uid, header, internal in conn.fetch_headers(uids):
            out = read_outgoing(header, internal)
            if out is not None:
                self.recorder.record(out, self.source.rep)
            self._advance(key, uidvalidity, uid)

    def _cursor(self, key: str, uidvalidity: int) -> int:
        with self.recorder.sessions() as session:
            row = session.get(SentCursorRow, key)
        # First look, or the folder was rebuilt: read it all. Old mail answers nothing, since only
        # open assignments are candidates and a reply must postdate its assignment.
        return row.last_uid if row is not None and row.uidvalidity == uidvalidity else 0

    def _advance(self, key: str, uidvalidity: int, uid: int) -> None:
        with self.recorder.sessions.begin() as session:
            session.merge(SentCursorRow(source=key, uidvalidity=uidvalidity, last_uid=uid))


def reply_settings(source: ReplySource, config: Config) -> ImapSettings:
    """IMAP settings for a reply source; a shared_sent source logs in as its shared mailbox."""
    if source.server is None:
        server = next(m for m in config.mailboxes if m.name == source.mailbox).server
    else:
        server = source.server
    return settings_for(server, poll_interval=source.poll_interval)
