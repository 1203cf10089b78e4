"""The escalation ladder in action: remind, escalate, reassign or pool late inquiries.

Each sweep asks the pure ladder (`sla.ladder.due_steps`) what is due for every open
assignment of one shared mailbox, and carries each step out in one transaction that records
the step (unique per assignment and step, so never twice) together with the mail it sends
(queued in the outbox). A restart simply sweeps again: nothing is repeated or skipped. Two
instances sweeping at once (a holder cut off while its successor starts) meet at the
assignment's row lock: the second passes it by and finds the step taken next time.

A step parses the original again (the notices quote it, a reassignment forwards it), under the
bounds intake uses: in the parser process, within daemon.parse_timeout and parse_memory_mb, its
try marked in the strikes table first (act/strikes.py). A message that cannot be parsed within
them goes on without it where it can: a reminder or escalation is sent without the buyer's text (the
step's line says why). A reassignment cannot forward what it cannot read: the message is set aside as
intake would, its copy to Quarantine with why and its ladder ended, one log line. A death during the
parse counts, and after two the message is not parsed again.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from mailrouter import store
from mailrouter.act import ledger
from mailrouter.act.original import InMemory, Original, ParseBytes, Spooled
from mailrouter.act.strikes import Arrival, Strikes
from mailrouter.act.outgoing import compose_forward, queue_forward, queue_notice
from mailrouter.config.schema import Config, MailboxConfig
from mailrouter.decide.assign import TeamState, is_available, team_of
from mailrouter.intake.imap import ImapError, Mailbox
from mailrouter.metrics import Metrics
from mailrouter.decide.examine import Examined, destination, examine_reassignment
from mailrouter.model import Clock, Decision, Outcome
from mailrouter.parse.process import Parsed, parse_one
from mailrouter.registry.record import handover
from mailrouter.registry.match import match_sender
from mailrouter.sla.ladder import (
    AssignmentSnapshot, Step, StepKind, due_steps, first_due, latest_only, pick_reassignee,
)
from mailrouter.sla.notify import Notice, NoticeKind, render_notice
from mailrouter.sla.chat import Queued, for_channel, hand_over, queue_chat  # noqa: F401 (for_channel: re-exported)
from mailrouter.sla.webhook import WebhookSender
from mailrouter.intake.spool import Spool
from mailrouter.store import AssignmentRow, MessageRow, SlaStepRow
from mailrouter.act.templating import make_environment

log = logging.getLogger("mailrouter.sla")


class _TriedElsewhere(Exception):
    """Another instance marked this message's try at the same moment (a holder cut off from the
    network sweeping while its successor does): it takes the step, this sweep passes it by."""


@dataclass
class Pending:
    """What a sweep decided to do after its transaction: webhooks."""

    notices: list[Notice]
    excerpt: str = ""  # of the buyer's text, for the notices
    chat: list[Queued] = field(default_factory=list)  # the notices' chat rows, posted after commit


@dataclass(frozen=True)
class Swept:
    """A sweep's outcome. (Copies that change owner are in the ledger, for the mailbox loop's filer.)"""

    taken: int = 0


class FollowUp:
    def __init__(self, config: Config, sessions, clock: Clock = store.utcnow,
                 webhooks: WebhookSender | None = None, metrics: Metrics | None = None,
                 parse: ParseBytes = parse_one, strikes: Strikes | None = None):
        self.config = config
        self.sessions = sessions
        self.clock = clock
        self.webhooks = webhooks
        self.metrics = metrics or Metrics()
        self.parse = parse  # the daemon passes the router's bounded one (the parser process)
        self.strikes = strikes or Strikes(sessions, clock)
        self.templates = make_environment(config.template_dirs)

    def sweep(self, mailbox: MailboxConfig, conn: Mailbox) -> Swept:
        """Carry out every step due now for this mailbox's open assignments.

        `conn` is the mailbox loop's own IMAP connection (runtime/mailbox.py): the one fetch a
        reassignment needs goes over it (a login of its own, under load, pushed Dovecot past its
        per-user connection limit). A copy that follows its new owner is only recorded here
        (ledger.refiled): that loop's filer moves it. It may be left with another folder selected."""
        if not self.config.sla.enabled:
            return Swept()
        return Swept(sum(self._advance(mailbox, assignment_id, conn)
                         for assignment_id in self._open_assignments(mailbox.name)))

    def _original(self, mailbox: MailboxConfig, message: MessageRow, conn: Mailbox) -> Original | None:
        spool = Spool(self.config.spool_dir) if message.size > self.config.large_message_bytes else None
        return fetch_original(mailbox, message, conn, spool)

    def _open_assignments(self, mailbox: str) -> list[int]:
        with self.sessions() as session:
            return list(session.scalars(
                select(AssignmentRow.id).join(MessageRow, MessageRow.id == AssignmentRow.message)
                .where(MessageRow.mailbox == mailbox, AssignmentRow.first_reply_at.is_(None),
                       AssignmentRow.ended_at.is_(None), AssignmentRow.assigned_at <= self.clock())
                .order_by(AssignmentRow.assigned_at)))

    def _advance(self, mailbox: MailboxConfig, assignment_id: int, conn: Mailbox) -> int:
        now = self.clock()
        with self.sessions() as session:  # read first: the IMAP fetch must not hold a write lock
            steps = self._due(session, assignment_id, now)
            message = _message_of(session, assignment_id) if steps else None
        if message is None:
            return 0
        raw = self._original(mailbox, message, conn)  # the notices quote it; a reassignment forwards it
        try:
            return self._advance_with(mailbox, assignment_id, now, _place(message), raw)
        finally:
            if raw is not None:
                raw.release(self.sessions)  # no forward streams it (pooled, answered meanwhile)

    def _advance_with(self, mailbox: MailboxConfig, assignment_id: int, now: datetime, place: Arrival,
                      raw: Original | None) -> int:
        """The original parsed again (within the bounds), then the step taken in one transaction."""
        try:
            parsed, tried = self._reparse(place, raw) if raw is not None else (None, False)
        except _TriedElsewhere:
            return 0  # another instance is on this message's step right now; its record stands
        pending = Pending([], notice_excerpt(parsed))
        try:
            taken = self._record_step(mailbox, assignment_id, now, place, raw, parsed, pending, tried)
        except BaseException:
            if tried:
                self._unmark(place)  # an exception, not a death: the next sweep tries it afresh
            raise
        self._after_commit(pending)
        return taken

    def _record_step(self, mailbox: MailboxConfig, assignment_id: int, now: datetime, place: Arrival,
                     raw: Original | None, parsed: Parsed | None, pending: Pending, tried: bool) -> int:
        with self.sessions.begin() as session:
            store.begin_writing(session)
            if tried:  # the parse is over, whatever this transaction decides (struck out: kept so)
                self.strikes.clear([place], session)
            if store.claim_assignment(session, assignment_id) is None:
                return 0  # another instance is taking this step now; its record stands
            # read again under the row lock: a reply, or another instance's step, may have come in
            steps = self._due(session, assignment_id, now)
            assignment = session.get(AssignmentRow, assignment_id)
            message = _message_of(session, assignment_id) if steps else None
            if assignment is not None and message is not None:
                step, skipped = latest_only(steps)
                self._skip(session, assignment, message, skipped, step, now)
                if step is not None and step.kind is StepKind.REASSIGN and parsed is not None and parsed.inquiry is None:
                    # a forward to the next rep needs the inquiry; a notice goes without its excerpt
                    self._set_aside(session, assignment, message, step, now, parsed.problem)
                elif step is not None:
                    self._take(session, mailbox, assignment, message, step, now, pending, raw, parsed)
            if self.webhooks:  # kept with the step: a crash before the post loses nothing
                pending.chat = queue_chat(session, self.config, pending.notices, now)
        return len(steps)

    def _reparse(self, place: Arrival, raw: Original) -> tuple[Parsed, bool]:
        """The original parsed again within the parse bounds, its try marked first (a kill during
        it counts, act/strikes.py), and True; struck twice the same way, it is not parsed again
        (False), and stays struck for the ladder's later steps."""
        try:
            doomed = self.strikes.begin([place]).get(place)
        except (IntegrityError, StaleDataError):  # its row written or cleared meanwhile by another sweep
            raise _TriedElsewhere() from None
        if doomed is not None:
            return Parsed(None, doomed, raw.sha256, raw.content_key, raw.size), False
        try:
            return raw.parse(self.config.parse, self.parse), True
        except BaseException:  # the parser closing under a stop, say: not the message's doing
            self._unmark(place)
            raise

    def _unmark(self, place: Arrival) -> None:
        try:
            self.strikes.ended([place])
        except Exception as exc:  # noqa: BLE001 - the sweep's own error is the one to report
            log.warning("could not unmark the ladder's try of message uid %d: %s", place.uid, exc)

    def _due(self, session: Session, assignment_id: int, now: datetime) -> list[Step]:
        assignment = session.get(AssignmentRow, assignment_id)
        if assignment is None or assignment.first_reply_at or assignment.ended_at:
            return []  # answered or ended since the list was read
        return due_steps(self._snapshot(session, assignment), self.config.sla.ladder(assignment.ladder),
                         self.config.sla.calendar_for(assignment.team), now)

    def _snapshot(self, session: Session, a: AssignmentRow) -> AssignmentSnapshot:
        done = frozenset(session.scalars(select(SlaStepRow.step).where(SlaStepRow.assignment == a.id)))
        previous: list[str] = []
        cursor = a.reassigned_from
        while cursor is not None and (earlier := session.get(AssignmentRow, cursor)) is not None:
            previous.append(earlier.rep)
            cursor = earlier.reassigned_from
        return AssignmentSnapshot(rep=a.rep, started_at=a.assigned_at, done=done,
                                  replied_at=a.first_reply_at, reassignments=len(previous),
                                  previous_reps=tuple(previous))

    def _take(self, session: Session, mailbox: MailboxConfig, a: AssignmentRow, message: MessageRow,
              step: Step, now: datetime, pending: Pending, raw: Original | None, parsed: Parsed | None) -> None:
        if step.kind is StepKind.REASSIGN:
            detail = self._reassign(session, mailbox, a, message, step, now, pending, raw, parsed)
        else:
            detail = {
                StepKind.REMIND: self._remind,
                StepKind.ESCALATE: self._escalate,
                StepKind.POOL: self._pool,
            }[step.kind](session, mailbox, a, message, step, now, pending)
            if parsed is not None and parsed.inquiry is None and step.kind is not StepKind.POOL:
                detail += f" (without the buyer's text: not parsed again: {parsed.problem})"
        session.add(SlaStepRow(assignment=a.id, step=step.key, kind=step.kind.value,
                               due_at=now, done_at=now, detail=detail))
        self.metrics.sla_step_taken(step.kind.value)
        log.info("%s %s for %s (assignment #%d of %s): %s", step.kind.value, step.key,
                 message.message_id or f"message #{message.id}", a.id, a.rep, detail)

    def _set_aside(self, session: Session, a: AssignmentRow, message: MessageRow, step: Step, now: datetime,
                   why: str) -> None:
        """The original cannot be parsed within the bounds: as at intake, its copy goes to
        Quarantine with why, for a manager; the ladder ends here (the rep keeps the forward)."""
        folder, keywords = destination(Decision(Outcome.QUARANTINED, why), self.config)
        a.ended_at, a.end_reason = now, "quarantined"
        ledger.set_aside(message, folder, keywords, f"the ladder could not parse it again: {why}")
        detail = f"quarantined instead: {why}"
        session.add(SlaStepRow(assignment=a.id, step=step.key, kind=step.kind.value,
                               due_at=now, done_at=now, detail=detail))
        log.error("%s %s for %s (assignment #%d of %s): original not parsed within the bounds, ladder ended, "
                  "filed in %s: %s", step.kind.value, step.key, message.message_id or f"message #{message.id}",
                  a.id, a.rep, folder, why)

    def _skip(self, session: Session, a: AssignmentRow, message: MessageRow, skipped: list[Step],
              instead: Step | None, now: datetime) -> None:
        """Record steps overtaken by a later one (see latest_only), so history shows them."""
        for step in skipped:
            detail = f"skipped: {instead.key if instead else 'a later step'} was due as well"
            session.add(SlaStepRow(assignment=a.id, step=step.key, kind=step.kind.value,
                                   due_at=now, done_at=now, detail=detail))
            log.info("%s %s for %s (assignment #%d of %s): %s", step.kind.value, step.key,
                     message.message_id or f"message #{message.id}", a.id, a.rep, detail)

    # --- the four kinds of step ----------------------------------------------------------

    def _remind(self, session, mailbox, a, message, step, now, pending) -> str:
        notice = self._notice(NoticeKind.REMIND, a, message, step, now, pending.excerpt,
                              self.config.reps[a.rep].language)
        self._queue_notice(session, mailbox, notice, self.config.reps[a.rep].email, a, step)
        pending.notices.append(notice)
        return f"reminded {a.rep}"

    def _escalate(self, session, mailbox, a, message, step, now, pending) -> str:
        supervisor = self._supervisor(a)
        if supervisor is None:
            return "no supervisor configured for this team"
        sup = self.config.reps[supervisor]
        notice = self._notice(NoticeKind.ESCALATE, a, message, step, now, pending.excerpt, sup.language,
                              supervisor=sup.name)
        self._queue_notice(session, mailbox, notice, sup.email, a, step)
        pending.notices.append(notice)
        return f"told supervisor {supervisor}"

    def _reassign(self, session, mailbox, a, message, step, now, pending,
                  raw: Original | None, parsed: Parsed | None) -> str:
        team = self.config.teams.get(a.team or "") or team_of(self.config, a.rep)
        store.hold_assignment_lock(session)  # the open counts, as admission on another instance moves them
        state = TeamState(open_counts=store.open_assignment_counts(session),
                          away=frozenset(store.away_reps(session, now)))
        members = list(team.members) if team else []
        available = [m for m in members if is_available(m, self.config, state)]
        snap = self._snapshot(session, a)
        new_rep = pick_reassignee(members, available, a.rep, snap.previous_reps, state.open_counts)
        if new_rep is None:
            return self._pool(session, mailbox, a, message, step, now, pending,
                              why="nobody else in the team is available")
        if raw is None or parsed is None:
            return self._pool(session, mailbox, a, message, step, now, pending,
                              why=f"original not found in {message.refile_from or message.folder}")
        examined = examine_reassignment(parsed, self.config, a.rep, new_rep, a.team, message.rule,
                                        now - message.received_at)
        if examined.inquiry is None:
            return self._pool(session, mailbox, a, message, step, now, pending,
                              why=f"original unreadable: {examined.decision.reason}")
        self._hand_over(session, mailbox, a, message, raw, examined, now)
        old, new = self.config.reps[a.rep], self.config.reps[new_rep]
        away_notice = self._notice(NoticeKind.REASSIGNED_AWAY, a, message, step, now, pending.excerpt, old.language,
                                   other_rep=new.name)
        self._queue_notice(session, mailbox, away_notice, old.email, a, step)
        pending.notices.append(self._notice(NoticeKind.REASSIGN, a, message, step, now, pending.excerpt, new.language,
                                            rep=new.name, other_rep=old.name, rep_id=new.id))
        folder = self.config.folders.routed.format(rep=new.folder)
        keywords = (self.config.keyword_prefix + "routed", self.config.keyword_prefix + new.id)
        ledger.refiled(message, folder, keywords, new.id)
        return f"reassigned from {a.rep} to {new_rep}"

    def _pool(self, session, mailbox, a, message, step, now, pending, why: str = "") -> str:
        folder = (self.config.folders.pool if step.folder == "pool" else self.config.folders.unrecognized)
        a.ended_at, a.end_reason = now, "pooled"
        ledger.refiled(message, folder, (self.config.keyword_prefix + "pooled",))
        return f"taken from {a.rep}, filed in {folder}" + (f" ({why})" if why else "")

    # --- helpers ------------------------------------------------------------------------

    def _hand_over(self, session: Session, mailbox: MailboxConfig, a: AssignmentRow, message: MessageRow,
                   raw: Original, examined: Examined, now: datetime) -> None:
        """End this assignment, start the new rep's, forward with the history, move the owner."""
        a.ended_at, a.end_reason = now, "reassigned"
        inquiry, decision = examined.inquiry, examined.decision
        assert inquiry is not None and decision.rep is not None
        rep = self.config.reps[decision.rep]
        # the first forward's Reply-To policy holds for the next rep too
        forward = compose_forward(self.config, self.templates, mailbox, rep, message.content_key, inquiry,
                                  decision, raw, now, known_customer=a.suspect_reply_to is not None)
        session.add(AssignmentRow(message=message.id, rep=rep.id, team=a.team, customer=a.customer,
                                  assigned_at=now, how="reassign", ladder=a.ladder, reassigned_from=a.id,
                                  forward_message_id=forward.message_id, due_at=self._due_from(a, rep.id, now),
                                  suspect_reply_to=a.suspect_reply_to))
        queue_forward(session, message.id, forward)
        match = match_sender(session, inquiry, self.config.parse.free_mail_domains, now,
                             self.config.registry.quiet_days)
        if match is not None and self.config.registry.enabled:
            handover(session, match.customer_id, rep.id, f"reassigned: {a.rep} did not reply", now)

    def _due_from(self, a: AssignmentRow, rep: str, start: datetime) -> datetime | None:
        """The new owner's first-reply due time: the same ladder, counted from the handover."""
        return first_due(self.config.sla.ladder(a.ladder), self.config.sla.calendar_for(a.team), start, rep)

    def _notice(self, kind: NoticeKind, a: AssignmentRow, message: MessageRow, step: Step,
                now: datetime, excerpt: str, language: str, **fields) -> Notice:
        notice = Notice(kind=kind, rep=self.config.reps[a.rep].name, customer=a.customer, subject=message.subject,
                        message_id=message.message_id, age=now - message.received_at,
                        language=language, step=step.key, excerpt=excerpt, rep_id=a.rep)
        return replace(notice, **fields)  # e.g. a reassignment's notice names the new rep

    def _queue_notice(self, session: Session, mailbox: MailboxConfig, notice: Notice, to: str,
                      a: AssignmentRow, step: Step) -> None:
        rendered = render_notice(self.templates, notice)
        domain = mailbox.address.rpartition("@")[2]
        notice_id = f"<mr.notice.{a.id}.{step.key.replace('@', '-').replace(':', '-')}.{notice.kind.value}@{domain}>"
        queue_notice(session, self.config, to, rendered.subject, rendered.body, notice_id, self.clock(),
                     mailbox=mailbox, message=a.message, thread_on=a.forward_message_id)

    def _supervisor(self, a: AssignmentRow) -> str | None:
        team = self.config.teams.get(a.team or "") or team_of(self.config, a.rep)
        return team.supervisor if team else None

    def _after_commit(self, pending: Pending) -> None:
        if self.webhooks:
            hand_over(self.webhooks, self.config, pending.chat)


EXCERPT_CHARS = 300


def notice_excerpt(parsed: Parsed | None) -> str:
    """The start of the buyer's text, for a notice's body (never a header); "" if unreadable."""
    inquiry = parsed.inquiry if parsed is not None else None
    return excerpt(inquiry.text, EXCERPT_CHARS) if inquiry else ""


def excerpt(text: str, limit: int) -> str:
    """Whitespace folded, cut at a word boundary near `limit`, with … when cut."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0] or flat[:limit]
    return cut + "…"


def _place(message: MessageRow) -> Arrival:
    """The message's strikes are kept under its row's location, as at intake."""
    return Arrival(message.mailbox, message.source, message.uidvalidity, message.uid)


def _message_of(session: Session, assignment_id: int) -> MessageRow | None:
    assignment = session.get(AssignmentRow, assignment_id)
    return session.get(MessageRow, assignment.message) if assignment is not None else None


def fetch_original(mailbox: MailboxConfig, message: MessageRow, conn: Mailbox,
                   spool: Spool | None = None) -> Original | None:
    """The shared copy, found in its folder by Message-ID over the mailbox loop's connection:
    in memory, or with `spool` in a spool file (a big one). A copy whose refile the filer has
    yet to do is still where it was."""
    if not message.message_id:
        return None
    folder = message.refile_from or message.folder
    try:
        validity = conn.select_folder(folder, readonly=True)
        uids = conn.search_header("Message-ID", message.message_id)
        if spool is not None and uids:
            spooled = spool.receive(spool.path_for(mailbox.name, folder, validity, uids[0]),
                                    conn.fetch_chunks(uids[0]))
            return Spooled(spooled) if spooled is not None else None
        found = [raw for _uid, raw in conn.fetch(uids[:1])]
        return InMemory(found[0]) if found else None
    except ImapError as exc:
        log.warning("could not fetch %s from %s: %s", message.message_id, folder, exc)
        return None
