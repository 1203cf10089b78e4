"""Admission: from a fetched message to a recorded decision and a queued forward.

A straight line per message - parse → look up → examine → record → queue - with a boundary
around each: a lookup or rule that raises, or a database error in the message's own record,
sends that message alone to Quarantine with the reason, and the rest of the batch goes on
(issue 14 item 1). The decision itself is pure (decide/examine.py); the rows are written by the
ledger (act/ledger.py) and the forward composed by act/outgoing.py, all in one transaction per
batch, before anything is sent or moved.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, insert, or_, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailrouter import store
from mailrouter.act import ledger
from mailrouter.act.forward import ForwardError
from mailrouter.act.original import InMemory, Original
from mailrouter.act.strikes import Arrival, Strikes, struck_again
from mailrouter.act.outgoing import compose_forward, forward_message_id, mailbox_named, queue_forward
from mailrouter.act.templating import make_environment
from mailrouter.config.schema import Config
from mailrouter.decide.assign import TeamState, team_of
from mailrouter.decide.classify import is_auto_reply
from mailrouter.decide.examine import (Earlier, Examined, ManualTarget, destination, examine,  # noqa: F401
                                       examine_manual, failed)
from mailrouter.decide.trust import never_a_customer
from mailrouter.metrics import Metrics
from mailrouter.model import Clock, Decision, Inquiry, Outcome, ParseSettings
from mailrouter.parse.process import InlineParser, Parsed, Parser
from mailrouter.registry.match import SenderLookup, lookup_sender
from mailrouter.registry.record import block_sender, record_routed
from mailrouter.sla.clock import reply_clock_start
from mailrouter.sla.ladder import first_due
from mailrouter.store import AssignmentRow, MessageRow, TeamCursorRow

log = logging.getLogger("mailrouter.route")
OUT_OF_OFFICE_AWAY = timedelta(days=1)  # renewed by every auto-reply; `rep back` ends it at once
__all__ = ["Router", "ManualTarget", "Examined", "destination", "forward_message_id", "log_decision", "Clock",
           "Arrival", "Strikes"]

# Built once: constructing a statement per message cost more than executing it (issue 7).
_INSERT_ASSIGNMENT = insert(store.table_of(AssignmentRow))
# A duplicate is the same content key (fingerprint.content_key) seen in another mailbox (the
# same mail sent to sales@ and info@), or in this mailbox within DUPLICATE_WINDOW (delivered
# twice); the same text resent to one mailbox later is a new inquiry.
DUPLICATE_WINDOW = timedelta(days=7)
_SAME_CONTENT = (select(MessageRow).where(
    MessageRow.content_key == bindparam("key"),
    or_(MessageRow.mailbox != bindparam("mailbox"), MessageRow.received_at >= bindparam("since")))
    .order_by(MessageRow.id).limit(1))
MAX_REASON = 2000  # characters of an error kept as a quarantined message's reason


def read_team_state(session: Session, now: datetime) -> TeamState:
    """The teams' rotation, load and who is away, as decide/ takes them; reads only. Admission
    and `explain` both ask here, so they decide from the same state."""
    return TeamState(store.team_cursors(session), store.open_assignment_counts(session),
                     frozenset(store.away_reps(session, now)))


def look_up_sender(session: Session, config: Config, parsed: Parsed, now: datetime) -> SenderLookup | None:
    """The registry's view of the sender, as admission asks for it (None when the registry is
    off or the message unreadable); reads only, so `explain` asks the same."""
    if parsed.inquiry is None or not config.registry.enabled:
        return None
    return lookup_sender(session, parsed.inquiry, config.parse.free_mail_domains, now,
                         config.registry.quiet_days, parsed.sender_keys)


class _MayPass(Exception):
    """A message's database error that may be the database's passing trouble: the batch is
    rolled back and tried again, and the failure becomes the message's strike."""

    def __init__(self, place: Arrival, why: str, error: Exception):
        super().__init__(why)
        self.place, self.why, self.error = place, why, error


def _maybe_passing(exc: Exception) -> bool:
    """A database error that is not about the message's own values (locked, disconnected)."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def describe_error(exc: BaseException) -> str:
    """One line for a reason or a log: the error's type and its driver's words, without SQL."""
    text = " ".join(str(getattr(exc, "orig", None) or exc).split())  # the driver's words, without SQL
    return f"{type(exc).__name__}: {text}"[:MAX_REASON]


class Router:
    """Records decisions; one lock makes check-for-duplicate and insert atomic across mailboxes
    (and store.hold_assignment_lock across instances)."""

    def __init__(self, config: Config, sessions: sessionmaker[Session], clock: Clock = store.utcnow,
                 metrics: Metrics | None = None, parser: Parser | None = None,
                 lock: threading.Lock | None = None, strikes: Strikes | None = None):
        self.config = config
        self.parser = parser or InlineParser()
        self.sessions = sessions
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.templates = make_environment(config.template_dirs)
        # one admission at a time across mailboxes; a reload passes the running router's lock on
        self._lock = lock or threading.Lock()
        self.strikes = strikes or Strikes(sessions, clock)

    # --- admission -------------------------------------------------------------------------

    def admit(self, mailbox: str, uidvalidity: int, uid: int, raw: bytes) -> MessageRow:
        """Record what to do with a message new to this mailbox's INBOX; return its row."""
        return self.admit_batch(mailbox, uidvalidity, [(uid, raw)])[0]

    def parse_ahead(self, messages: list[tuple[int, bytes]]) -> "Future[list[Parsed]] | None":
        """Start parsing a fetched batch (in the parser process); hand the result to admit_batch.
        None when the parser works in this process (daemon.parse_workers = 0): admit_batch then
        parses each message inside its marked try, so a kill during the parse is a strike."""
        if self.parser.in_process:
            return None
        return self.parser.submit([raw for _uid, raw in messages], self.config.parse)

    def parse_bounded(self, raw: bytes, settings: ParseSettings) -> Parsed:
        """One message through the parser process, so its time budget (daemon.parse_timeout)
        holds on every path: spooled messages and Assign/ folders too, not only INBOX batches."""
        return self.parser.submit([raw], settings).result()[0]

    def admit_batch(self, mailbox: str, uidvalidity: int, messages: list[tuple[int, bytes]],
                    parsing: "Future[list[Parsed]] | None" = None,
                    arrivals: Mapping[int, datetime] | None = None) -> list[MessageRow]:
        """Record decisions for a fetched batch in one transaction: nothing is sent or moved
        before it commits, so a crash loses only undecided work, and the team state is read
        once and carried forward in memory instead of per message. `arrivals`: uid -> when it
        arrived (sla/clock.py), where the first-reply clock starts; absent: now."""
        if not messages:
            return []
        parsing = parsing or self.parse_ahead(messages)
        parsed: list[Parsed | None] = list(parsing.result()) if parsing is not None else [None] * len(messages)
        items: list[tuple[int, Original, Parsed | None]] = [
            (uid, InMemory(raw), p) for (uid, raw), p in zip(messages, parsed, strict=True)]
        places = {uid: Arrival(mailbox, "INBOX", uidvalidity, uid) for uid, _raw in messages}
        struck = self.strikes.struck(list(places.values()))
        # a message with a strike is tried alone: if it gets the process killed again, the
        # second strike is its own, not every message's that shared its batch
        groups = [[i for i in items if places[i[0]] not in struck], *([i] for i in items if places[i[0]] in struck)]
        rows: dict[int, MessageRow] = {}
        for group in filter(None, groups):
            rows.update(zip([uid for uid, _o, _p in group],
                            self._try(mailbox, uidvalidity, group, arrivals or {}), strict=True))
        return [rows[uid] for uid, _raw in messages]

    def _try(self, mailbox: str, uidvalidity: int, items: list[tuple[int, Original, Parsed | None]],
             arrivals: Mapping[int, datetime]) -> list[MessageRow]:
        """`_admit` with each message's try marked in the database first, so a kill in the middle
        of it (an in-process parse too) counts against these messages after the restart."""
        places = [Arrival(mailbox, "INBOX", uidvalidity, uid) for uid, _o, _p in items]
        doomed = self.strikes.begin(places)
        try:
            return self._admit(mailbox, uidvalidity, self._parsed_now(items, places, doomed), arrivals, doomed)
        except _MayPass as failure:
            self.unmark_tries([p for p in places if p != failure.place])
            self.strikes.failed(failure.place, failure.why)  # after the rollback: the strike must stay
            raise failure.error from None
        except BaseException:
            self.unmark_tries(places)
            raise

    def _parsed_now(self, items: list[tuple[int, Original, Parsed | None]], places: list[Arrival],
                    doomed: Mapping[Arrival, str]) -> list[tuple[int, Original, Parsed]]:
        """Each message's parse: the parser process's, or (in process) done here, inside the
        marked try; a message struck twice the same way is not parsed again."""
        out: list[tuple[int, Original, Parsed]] = []
        for (uid, original, parsed), at in zip(items, places, strict=True):
            if parsed is None and at in doomed:
                parsed = Parsed(None, doomed[at], original.sha256, original.content_key, original.size)
            elif parsed is None:
                parsed = original.parse(self.config.parse, self.parse_bounded)
            out.append((uid, original, parsed))
        return out

    def unmark_tries(self, places: list[Arrival]) -> None:
        """The tries ended in an exception, not in the process's death; if even that cannot be
        written, the next try counts them as deaths, once (they were tried alone then)."""
        try:
            self.strikes.ended(places)
        except Exception as exc:  # noqa: BLE001 - the batch's own error is the one to report
            log.warning("could not unmark %d message(s) tried: %s", len(places), describe_error(exc))

    def admit_original(self, mailbox: str, uidvalidity: int, uid: int, original: Original,
                       arrived: datetime | None = None) -> MessageRow:
        """`admit_batch` for one message given as an Original (a big one in a spool file:
        decided from the facts its scan gathered; its forward streams from the file). Its try
        is marked by the caller (the mailbox loop's boundary), which also keeps its strikes."""
        parsed = original.parse(self.config.parse, self.parse_bounded)
        try:
            return self._admit(mailbox, uidvalidity, [(uid, original, parsed)],
                               {uid: arrived} if arrived else {}, {})[0]
        except _MayPass as failure:
            raise failure.error from None

    def _admit(self, mailbox: str, uidvalidity: int, items: list[tuple[int, Original, Parsed]],
               arrivals: Mapping[int, datetime], doomed: Mapping[Arrival, str]) -> list[MessageRow]:
        """`doomed`: messages struck twice the same way, recorded as quarantined untried."""
        with self._lock, self.sessions.begin() as session:
            store.begin_writing(session)  # one transaction for the batch, a SAVEPOINT per message
            store.hold_assignment_lock(session)  # self._lock's reach, across instances
            state = self._team_state(session)
            adoptable = self._has_unfiled_from_other_validity(session, mailbox, uidvalidity)
            rows, decided = [], []
            for uid, original, parsed in items:
                at = Arrival(mailbox, "INBOX", uidvalidity, uid)
                decision: Decision | None
                if at in doomed:
                    row, decision = self._quarantine(session, at, original, parsed, arrivals.get(uid), doomed[at])
                else:
                    row, decision = self._admit_guarded(session, at, original, parsed, state, adoptable,
                                                        arrivals.get(uid))
                if decision is not None:
                    state = state.after(decision)
                    decided.append(row)
                rows.append(row)
            self._save_team_cursors(session, decided)
            self.strikes.clear([Arrival(mailbox, "INBOX", uidvalidity, uid) for uid, _o, _p in items], session)
            return rows

    def _admit_guarded(self, session: Session, at: Arrival, original: Original, parsed: Parsed,
                       state: TeamState, adoptable: bool,
                       arrived: datetime | None) -> tuple[MessageRow, Decision | None]:
        """One message inside its own SAVEPOINT: whatever it raises rolls back its rows alone."""
        try:
            with session.begin_nested():
                return self._admit_one(session, at, original, parsed, state, adoptable, arrived)
        except Exception as exc:
            if store.state_write_failure(exc, self.config.database):
                raise  # a full or failing state disk: not the message's fault, the whole batch waits
            why = describe_error(exc)
            if _maybe_passing(exc) and not struck_again(self.strikes.last_failure(at, session), why):
                raise _MayPass(at, why, exc)  # perhaps the database: the batch is tried again whole
            log.exception("message uid %d in %s could not be recorded; quarantined", at.uid, at.mailbox)
        return self._quarantine(session, at, original, parsed, arrived, f"could not be recorded: {why}")

    def _quarantine(self, session: Session, at: Arrival, original: Original, parsed: Parsed,
                    arrived: datetime | None, why: str) -> tuple[MessageRow, Decision]:
        decision = Decision(Outcome.QUARANTINED, why)
        with session.begin_nested():  # the row alone, its values cut to size: it must go in
            row = self._record(session, at, Examined(parsed.inquiry, decision), None, original, arrived)
        return row, decision

    def _admit_one(self, session: Session, at: Arrival, original: Original, parsed: Parsed,
                   state: TeamState, adoptable: bool,
                   arrived: datetime | None = None) -> tuple[MessageRow, Decision | None]:
        """The row and the new decision (None: a known message under a new UID, decided before)."""
        adopted = adoptable and self._adopt_after_uidvalidity_change(session, at, parsed.sha256)
        if adopted:
            return adopted, None
        earlier = self._earlier_copy(session, at.mailbox, parsed)
        looked_up: SenderLookup | None = None
        examined: Examined | None = None
        if earlier is None and parsed.inquiry is not None and self.config.registry.enabled:
            try:
                with session.begin_nested():  # (PostgreSQL: a failed query must not poison the rest)
                    looked_up = self._look_up(session, parsed)
            except Exception as exc:  # a bad key, a registry bug: this message alone is quarantined
                log.exception("registry lookup failed for %s", parsed.inquiry and parsed.inquiry.message_id)
                examined = failed(parsed, "registry lookup", exc)
        if examined is None:
            verdict = Earlier(earlier.id, earlier.mailbox, earlier.outcome) if earlier else None
            examined = examine(parsed, self.config, state, looked_up.match if looked_up else None, verdict)
        row = self._record(session, at, examined, earlier, original, arrived)
        if examined.decision.outcome is Outcome.ROUTED:
            self._assign_and_queue(session, row, original, examined, at.mailbox, looked_up)
        elif examined.inquiry is not None and examined.decision.outcome is Outcome.IGNORED:
            self._note_rep_out_of_office(session, examined.inquiry)  # not on a forged one (Unrecognized)
        return row, examined.decision

    def _earlier_copy(self, session: Session, mailbox: str, parsed: Parsed) -> MessageRow | None:
        """The duplicate verdict. An unreadable message is quarantined, never a "duplicate" of
        other junk."""
        if parsed.inquiry is None:
            return None
        return session.scalars(_SAME_CONTENT, {
            "key": parsed.content_key, "mailbox": mailbox, "since": self.clock() - DUPLICATE_WINDOW}).first()

    def _look_up(self, session: Session, parsed: Parsed) -> SenderLookup | None:
        return look_up_sender(session, self.config, parsed, self.clock())

    def _record(self, session: Session, at: Arrival, examined: Examined,
                earlier: MessageRow | None, original: Original, arrived: datetime | None = None) -> MessageRow:
        values = self._message_values(at, original, examined)
        if arrived is not None:
            values["received_at"] = arrived
        if earlier:
            values.update(duplicate_of=earlier.id, message_id=earlier.message_id, sender=earlier.sender,
                          subject=earlier.subject)
        rep = examined.decision.rep
        if examined.decision.outcome is Outcome.ROUTED and rep is not None:  # (a routed decision names its rep)
            address = mailbox_named(self.config, at.mailbox).address
            values["forward_message_id"] = forward_message_id(original.content_key, rep, address)
        return ledger.decided(session, values)

    def quarantine_unread(self, mailbox: str, source: str, uidvalidity: int, uid: int, reason: str) -> MessageRow:
        """A message that could not even be read (fetched, spooled, scanned), the same way twice:
        recorded as quarantined so the filer moves it aside and no round fetches it again."""
        decision = Decision(Outcome.QUARANTINED, reason[:MAX_REASON])
        values = dict(mailbox=mailbox, source=source, uidvalidity=uidvalidity, uid=uid, raw_sha256="",
                      content_key="", size=0, **self._decision_values(decision), received_at=self.clock(),
                      decided_at=self.clock(), file_attempts=0)
        with self._lock, self.sessions.begin() as session:
            row = ledger.decided(session, values)
            self.strikes.clear([Arrival(mailbox, source, uidvalidity, uid)], session)
        log.error("message uid %d in %s %s quarantined: %s", uid, mailbox, source, reason)
        return row

    # --- manual assignment (Assign/ folders) --------------------------------------------------

    def assign_manually(self, mailbox: str, source: str, uidvalidity: int, uid: int,
                        original: Original, target: ManualTarget) -> MessageRow:
        """A manager moved this message into an Assign/ folder: route it as the folder says.

        The message's existing row (usually an Unrecognized one) is taken over, so its history
        stays one row; its location becomes the Assign/ folder until it is filed again.
        """
        at = Arrival(mailbox, source, uidvalidity, uid)
        # parsed before the admission lock: a slow one must not hold up the other mailboxes
        parsed = original.parse(self.config.parse, self.parse_bounded)
        with self._lock, self.sessions.begin() as session:
            store.hold_assignment_lock(session)
            existing = session.scalars(select(MessageRow).where(
                MessageRow.mailbox == mailbox, MessageRow.source == source,
                MessageRow.uidvalidity == uidvalidity, MessageRow.uid == uid)).first()
            if existing:
                return existing  # seen before a restart: the round will file it once sent
            self.strikes.clear([at], session)  # recorded below, with this transaction
            examined = examine_manual(parsed, self.config, self._team_state(session), target, source)
            row = session.scalars(select(MessageRow).where(
                MessageRow.mailbox == mailbox, MessageRow.content_key == original.content_key)
                .order_by(MessageRow.id.desc()).limit(1)).first()
            if row is None:
                row = self._record(session, at, examined, None, original)
            else:
                ledger.taken_over(row, source, uidvalidity, uid, self._decision_values(examined.decision),
                                  self.clock())
            if examined.decision.outcome is Outcome.ROUTED:
                self._assign_and_queue(session, row, original, examined, mailbox, None)
                self._save_team_cursors(session, [row])
            elif (target.kind == "ignore" and self.config.registry.block_not_inquiry
                  and examined.inquiry and examined.inquiry.sender):
                block_sender(session, examined.inquiry.sender, f"filed as not an inquiry from {source}",
                             self.clock())
            return row

    # --- pieces ------------------------------------------------------------------------------

    def _team_state(self, session: Session) -> TeamState:
        return read_team_state(session, self.clock())

    @staticmethod
    def _save_team_cursors(session: Session, rows: list[MessageRow]) -> None:
        """Each team's round-robin position after the batch, written once per team."""
        last = {row.team: row.rep for row in rows
                if row.outcome == Outcome.ROUTED.value and row.team and row.rep}
        for team, rep in last.items():
            session.merge(TeamCursorRow(team=team, last_rep=rep))

    @staticmethod
    def _has_unfiled_from_other_validity(session: Session, mailbox: str, uidvalidity: int) -> bool:
        """Only after a UIDVALIDITY change can a fetched message be one already known."""
        return session.scalar(select(MessageRow.id).where(
            MessageRow.mailbox == mailbox, MessageRow.source == "INBOX",
            MessageRow.state != store.FILED, MessageRow.uidvalidity != uidvalidity).limit(1)) is not None

    def _adopt_after_uidvalidity_change(self, session: Session, at: Arrival, sha: str) -> MessageRow | None:
        """The same bytes under a new UID in the same mailbox are the same message, not a copy."""
        row = session.scalars(select(MessageRow).where(
            MessageRow.mailbox == at.mailbox, MessageRow.raw_sha256 == sha, MessageRow.source == "INBOX",
            MessageRow.state != store.FILED, MessageRow.uidvalidity != at.uidvalidity)).first()
        if row:
            log.info("message #%d %s: UIDVALIDITY changed, now uid %d", row.id, row.message_id, at.uid)
            ledger.moved_location(row, at.uidvalidity, at.uid)
        return row

    def _note_rep_out_of_office(self, session: Session, inquiry: Inquiry) -> None:
        """A rep's out-of-office answer (to a forward) marks them away for a day, renewed by the
        next one: no new inquiries meanwhile; open ones follow the ladder as usual."""
        rep = next((r for r in self.config.reps.values() if r.email == inquiry.from_address), None)
        if rep is None or not is_auto_reply(inquiry):
            return
        until = self.clock() + OUT_OF_OFFICE_AWAY
        current = session.get(store.RepStatusRow, rep.id)
        if current is None or current.away_until is None or current.away_until < until:
            session.merge(store.RepStatusRow(rep=rep.id, away_until=until,
                                             note=f"out-of-office reply: {inquiry.subject[:200]}"))
            log.info("rep %s sent an out-of-office reply; away until %s", rep.id, until.isoformat())

    def _decision_values(self, decision: Decision) -> dict:
        folder, keywords = destination(decision, self.config)
        return dict(folder=folder, keywords=" ".join(keywords), outcome=decision.outcome.value,
                    reason=decision.reason, rule=decision.rule, rep=decision.rep,
                    team=decision.team)

    def _message_values(self, at: Arrival, original: Original, examined: Examined) -> dict:
        q = examined.inquiry
        now = self.clock()
        return dict(
            mailbox=at.mailbox, source=at.source, uidvalidity=at.uidvalidity, uid=at.uid,
            raw_sha256=original.sha256, content_key=original.content_key, size=original.size,
            **self._decision_values(examined.decision),
            message_id=(q.message_id if q else original.message_id)[:500], sender=q.sender[:320] if q else "",
            subject=q.subject[:500] if q else "", country=q.country if q else None,
            language=q.language if q else None, products=" ".join(q.products)[:500] if q else "",
            received_at=now, decided_at=now, file_attempts=0,
        )

    def _assign_and_queue(self, session: Session, row: MessageRow, original: Original, examined: Examined,
                          mailbox_name: str, looked_up: SenderLookup | None) -> None:
        q, decision = examined.inquiry, examined.decision
        assert q is not None and decision.rep is not None
        rep = self.config.reps[decision.rep]
        now = self.clock()
        try:
            # a known customer's replies are not redirected by a Reply-To (decide/trust.py)
            known = examined.match is not None and not examined.match.lapsed
            forward = compose_forward(self.config, self.templates, mailbox_named(self.config, mailbox_name), rep,
                                      row.content_key, q, decision, original, now, known_customer=known)
        except ForwardError as exc:  # e.g. no address a Reply could reach: the manager must look
            values = self._decision_values(Decision(
                Outcome.UNRECOGNIZED, f"{decision.reason}; cannot forward: {exc}", rule=decision.rule))
            ledger.redecided(session, row, dict(values, forward_message_id=None))
            return
        row.forward_message_id = forward.message_id
        member_of = team_of(self.config, rep.id)
        team = decision.team or (member_of.id if member_of else None)
        # plain INSERTs: nothing reads these back as objects in this transaction (issue 7)
        session.execute(_INSERT_ASSIGNMENT, dict(
            message=row.id, rep=rep.id, team=team, customer=q.sender, assigned_at=now, how=decision.how,
            ladder=decision.ladder or self.config.sla.default_ladder,
            due_at=first_due(self.config.sla.ladder(decision.ladder), self.config.sla.calendar_for(team),
                             reply_clock_start(decision.how, None, now, row.received_at), rep.id),
            forward_message_id=row.forward_message_id, suspect_reply_to=forward.reply.suspect or None))
        queue_forward(session, row.id, forward)
        if self.config.registry.enabled and (decision.how != "manual" or self.config.registry.learn_from_manual):
            if why := never_a_customer(q.sender, self.config.own_addresses, self.config.own_domains):
                log.info("registry: %s not recorded as a customer: %s", q.sender, why)
                return
            record_routed(session, q, rep.id, now, self.config.registry.source, message_row=row.id,
                          quiet_days=self.config.registry.quiet_days, reason=_handover_reason(decision),
                          looked_up=looked_up, learn_aliases=decision.how == "manual")

    # --- reading and filing --------------------------------------------------------------------

    def awaiting_filing(self, mailbox: str, source: str) -> list[MessageRow]:
        """Rows whose copy can be filed now: non-routed ones at once, routed ones once sent."""
        with self.sessions() as session:
            # `state IN (...)` first so the (mailbox, state) index finds the few waiting rows;
            # an OR over state alone made SQLite scan every row of the folder, adopted history
            # included (19 ms per round at 100,000 rows, 0.4 ms this way).
            return list(session.scalars(select(MessageRow).where(
                MessageRow.mailbox == mailbox, MessageRow.state.in_([store.SENT, store.DECIDED]),
                MessageRow.source == source,
                (MessageRow.state == store.SENT) | (MessageRow.outcome != Outcome.ROUTED.value),
            ).order_by(MessageRow.id)))

    def last_decision_at(self, mailbox: str) -> datetime | None:
        """The daemon's latest decision in this mailbox: after a restart, the last moment it is
        known to have looked there (the lower bound of an arrival, sla/clock.py)."""
        with self.sessions() as session:
            return session.scalar(select(func.max(MessageRow.decided_at)).where(MessageRow.mailbox == mailbox))

    def known_uids(self, mailbox: str, source: str, uidvalidity: int, candidates: set[int]) -> set[int]:
        """Which of the UIDs now in a folder were seen before (the folder is small, history is not)."""
        ordered, known = sorted(candidates), set[int]()
        with self.sessions() as session:
            for start in range(0, len(ordered), 5000):  # stay under SQL parameter limits
                known.update(session.scalars(select(MessageRow.uid).where(
                    MessageRow.mailbox == mailbox, MessageRow.source == source,
                    MessageRow.uidvalidity == uidvalidity,
                    MessageRow.uid.in_(ordered[start:start + 5000]))))
        return known

    def mark_filed(self, rows: list[MessageRow], note: str = "") -> None:
        now = self.clock()
        with store.durable_transaction(self.sessions) as conn:  # "filed" must outlive a failing disk
            ledger.filed(conn, [row.id for row in rows], now)
        for row in rows:
            log_decision(row, now, note)
            self.metrics.message_decided(row.outcome)

    def mark_filing_failed(self, rows: list[MessageRow], error: str) -> None:
        with self.sessions.begin() as session:
            ledger.filing_failed(session, [row.id for row in rows], error)

    def awaiting_refile(self, mailbox: str) -> list[MessageRow]:
        """Filed copies that are to follow their new owner (ledger.refiled), oldest first."""
        with self.sessions() as session:
            return list(session.scalars(select(MessageRow).where(
                MessageRow.mailbox == mailbox, MessageRow.refile_from.is_not(None)).order_by(MessageRow.id)))

    def refile_failed(self, row: MessageRow, error: str) -> None:
        with self.sessions.begin() as session:
            ledger.refile_failed(session, row.id, error)

    def refile_settled(self, row: MessageRow, stays: bool = False, note: str = "") -> None:
        """The filer is done: the copy is in the row's folder, or (`stays`) the row follows it."""
        with self.sessions.begin() as session:
            if stays:
                ledger.settled(session, row.id, row.refile_from, note)
            else:
                ledger.settled(session, row.id)


def _handover_reason(decision: Decision) -> str:
    return dict(decision.notes).get("Handover", "")


def log_decision(row: MessageRow, now: datetime, note: str = "") -> None:
    """The one line per message a person reads in the journal (fields too, for JSON logs)."""
    seconds = (now - row.received_at).total_seconds()
    log.info("%s %s from %s -> %s; %s; filed in %s%s (%.2fs)",
             row.outcome, row.message_id or "(no Message-ID)", row.sender or "(unknown sender)",
             row.rep or "-", row.reason, row.folder, f" ({note})" if note else "", seconds,
             extra={"outcome": row.outcome, "message_id": row.message_id, "sender": row.sender,
                    "rule": row.rule, "rep": row.rep, "folder": row.folder,
                    "latency": round(seconds, 3), "mailbox": row.mailbox})
