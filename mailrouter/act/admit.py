"""From raw bytes to a recorded decision: parse, classify, decide, queue the forward.

`examine` is pure (used by `explain` and the daemon alike); `Router.admit` records its result,
the assignment and the queued forward in one transaction, before anything is sent or moved.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from collections.abc import Mapping
from typing import Callable

from sqlalchemy import bindparam, func, insert, or_, select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter import store
from mailrouter.config.schema import Config
from mailrouter.decide.classify import is_auto_reply
from mailrouter.decide.trust import ReplyTarget, never_a_customer, reply_note, reply_target
from mailrouter.decide.assign import TeamState, choose_member, decide, is_available, team_of
from mailrouter.act.forward import ForwardError, ForwardSpec, tag_labels, tag_subject
from mailrouter.model import Clock, Decision, Inquiry, Outcome, ParseSettings
from mailrouter.parse import parse_message
from mailrouter.parse.process import InlineParser, Parsed, Parser, parse_one
from mailrouter.registry.match import RegistryMatch
from mailrouter.registry.record import block_sender, record_routed
from mailrouter.registry.score import Score, score_inquiry
from mailrouter.registry.keys import SenderKeys
from mailrouter.registry.match import SenderLookup, lookup_sender
from mailrouter.sla.clock import reply_clock_start
from mailrouter.sla.ladder import AssignmentSnapshot, step_time
from mailrouter.intake.spool import SpooledMessage, fingerprints, queued_forward
from mailrouter.metrics import Metrics
from mailrouter.store import AssignmentRow, MessageRow, OutboxRow, TeamCursorRow
from mailrouter.act.templating import make_environment

log = logging.getLogger("mailrouter.route")
OUT_OF_OFFICE_AWAY = timedelta(days=1)  # renewed by every auto-reply; `rep back` ends it at once


Lookup = Callable[[Inquiry], "RegistryMatch | None"]


def no_registry(_inquiry: Inquiry) -> None:
    return None


@dataclass(frozen=True)
class Examined:
    """What the pure stages made of one message."""

    inquiry: Inquiry | None  # None when the message could not be parsed at all
    decision: Decision
    match: RegistryMatch | None = None
    score: Score | None = None
    looked_up: SenderLookup | None = None  # the registry lookup behind `match`, for recording


def examine(raw: bytes, config: Config, state: TeamState, lookup: Lookup = no_registry,
            parsed: Parsed | None = None) -> Examined:
    """Parse (unless `parsed` already holds the parse), consult the registry (read only),
    score and decide; nothing else.

    An unreadable or hostile message, or a bug in any stage, quarantines the message instead
    of stopping the daemon.
    """
    parsed = parsed or parse_one(raw, config.parse)
    inquiry = parsed.inquiry
    if inquiry is None:
        return Examined(None, Decision(Outcome.QUARANTINED, parsed.problem))
    try:
        match = lookup(inquiry) if config.registry.enabled else None
        score = score_inquiry(inquiry, config.registry.score,
                              reinquiry=match is not None and not match.lapsed)
        inquiry = replace(inquiry, score=score.points, tier=score.tier)
        decision = decide(inquiry, config, state, match)
        return Examined(inquiry, _with_score(decision, score), match, score)
    except Exception as exc:
        log.exception("decision failed for %s", inquiry.message_id)
        return Examined(inquiry, Decision(Outcome.QUARANTINED, f"rule error: {type(exc).__name__}: {exc}"))


def parse_spooled(original: SpooledMessage, settings: ParseSettings) -> Parsed:
    """The parse of a message in a spool file: from its reduced copy (headers and text), with
    the attachments and fingerprints the scan found (the copy has the bodies dropped)."""
    if original.problem:  # quarantined, not retried: the same bytes would fail the same way
        return Parsed(None, f"unreadable MIME structure: {original.problem}", original.sha256,
                      original.content_key, original.size)
    parsed = parse_one(original.reduced, settings)
    inquiry = parsed.inquiry and replace(parsed.inquiry, attachments=original.attachments)
    return replace(parsed, inquiry=inquiry, sha256=original.sha256, content_key=original.content_key,
                   size=original.size)


def examine_spooled(original: SpooledMessage, config: Config, state: TeamState,
                    lookup: Lookup = no_registry) -> Examined:
    """`examine` for a message in a spool file (see parse_spooled)."""
    return examine(original.reduced, config, state, lookup, parse_spooled(original, config.parse))


def parse_original(original: bytes | SpooledMessage, settings: ParseSettings) -> Inquiry:
    """parse_message for either kind of original (see examine_spooled)."""
    if isinstance(original, bytes):
        return parse_message(original, settings)
    return replace(parse_message(original.reduced, settings), attachments=original.attachments)


@dataclass(frozen=True)
class ManualTarget:
    """What an Assign/ folder means: a rep, a team (its strategy picks), or not an inquiry."""

    kind: str  # "rep" | "team" | "ignore"
    id: str = ""


def examine_manual(raw: bytes | SpooledMessage, config: Config, state: TeamState, target: ManualTarget,
                   folder: str) -> Examined:
    """The manager's choice, as a Decision the rest of the pipeline treats like any other."""
    try:
        inquiry = parse_original(raw, config.parse)
    except Exception as exc:  # the manager asked for it: an unreadable message still goes to Quarantine
        return Examined(None, Decision(Outcome.QUARANTINED, f"unreadable: {exc}"))
    why = f"moved into {folder} by a manager"
    if target.kind == "ignore":
        return Examined(inquiry, Decision(Outcome.IGNORED, f"not an inquiry: {why}", how="manual"))
    if target.kind == "rep":
        return Examined(inquiry, Decision(Outcome.ROUTED, why, rep=target.id, how="manual"))
    team = config.teams[target.id]
    available = [m for m in team.members if is_available(m, config, state)] or list(team.members)
    rep, how = choose_member(team, available, state)
    return Examined(inquiry, Decision(Outcome.ROUTED, f"{why}; {how}", rep=rep, team=team.id, how="manual"))


def _with_score(decision: Decision, score: Score) -> Decision:
    if decision.outcome is not Outcome.ROUTED:
        return decision
    line = f"{score.points} ({score.tier})" + (": " + "; ".join(score.reasons) if score.reasons else "")
    return replace(decision, notes=decision.notes + (("Lead score", line),))


def destination(decision: Decision, config: Config) -> tuple[str, tuple[str, ...]]:
    """The folder and IMAP keywords for the shared copy."""
    f, prefix = config.folders, config.keyword_prefix
    if decision.outcome is Outcome.ROUTED:
        rep = config.reps[decision.rep]
        # A returning buyer's copy is marked for the manager's searches: the label that left the
        # subject (issue 15). One fixed keyword; per-country ones would hit maildir's 26.
        reinquiry = (prefix + "reinquiry",) if decision.reinquiry else ()
        return f.routed.format(rep=rep.folder), (prefix + "routed", prefix + rep.id, *reinquiry)
    folder = {
        Outcome.UNRECOGNIZED: f.unrecognized, Outcome.IGNORED: f.ignored,
        Outcome.DUPLICATE: f.duplicate, Outcome.QUARANTINED: f.quarantine,
        Outcome.UNDELIVERABLE: f.undeliverable,
    }[decision.outcome]
    return folder, (prefix + decision.outcome.value,)


def forward_message_id(key: str, rep: str, shared_address: str) -> str:
    """Deterministic, so a forward re-sent after a crash carries the same Message-ID."""
    domain = shared_address.rpartition("@")[2] or "mailrouter.invalid"
    return f"<mr.{key[:24]}.{rep}@{domain}>"


# Built once: constructing a statement per message cost more than executing it (issue 7).
_INSERT_ASSIGNMENT = insert(AssignmentRow.__table__)
_INSERT_OUTBOX = insert(OutboxRow.__table__)
_INSERT_MESSAGE = insert(MessageRow.__table__)
# A duplicate is the same content key (fingerprint.content_key) seen in another mailbox (the
# same mail sent to sales@ and info@), or in this mailbox within DUPLICATE_WINDOW (delivered
# twice); the same text resent to one mailbox later is a new inquiry.
DUPLICATE_WINDOW = timedelta(days=7)
_SAME_CONTENT = (select(MessageRow).where(
    MessageRow.content_key == bindparam("key"),
    or_(MessageRow.mailbox != bindparam("mailbox"), MessageRow.received_at >= bindparam("since")))
    .order_by(MessageRow.id).limit(1))


class Router:
    """Records decisions; one lock makes check-for-duplicate and insert atomic across mailboxes."""

    def __init__(self, config: Config, sessions: sessionmaker[Session], clock: Clock = store.utcnow,
                 metrics: Metrics | None = None, parser: Parser | None = None,
                 lock: threading.Lock | None = None):
        self.config = config
        self.parser = parser or InlineParser()
        self.sessions = sessions
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.templates = make_environment(config.template_dirs)
        # one admission at a time across mailboxes; a reload passes the running router's lock on
        self._lock = lock or threading.Lock()

    def admit(self, mailbox: str, uidvalidity: int, uid: int, raw: bytes) -> MessageRow:
        """Record what to do with a message new to this mailbox's INBOX; return its row."""
        return self.admit_batch(mailbox, uidvalidity, [(uid, raw)])[0]

    def parse_ahead(self, messages: list[tuple[int, bytes]]) -> "Future[list[Parsed]]":
        """Start parsing a fetched batch (in the parser process); hand the result to admit_batch."""
        return self.parser.submit([raw for _uid, raw in messages], self.config.parse)

    def admit_batch(self, mailbox: str, uidvalidity: int, messages: list[tuple[int, bytes]],
                    parsing: "Future[list[Parsed]] | None" = None,
                    arrivals: Mapping[int, datetime] | None = None) -> list[MessageRow]:
        """Record decisions for a fetched batch in one transaction: nothing is sent or moved
        before it commits, so a crash loses only undecided work, and the team state is read
        once and carried forward in memory instead of per message. `arrivals`: uid -> when it
        arrived (sla/clock.py), where the first-reply clock starts; absent: now."""
        if not messages:
            return []
        parsed = (parsing or self.parse_ahead(messages)).result()
        with self._lock, self.sessions.begin() as session:
            state = self._team_state(session)
            adoptable = self._has_unfiled_from_other_validity(session, mailbox, uidvalidity)
            rows, decided = [], []
            for (uid, raw), parse in zip(messages, parsed, strict=True):
                row, decision = self._admit_one(session, mailbox, uidvalidity, uid, raw, state, parse,
                                                adoptable, (arrivals or {}).get(uid))
                if decision is not None:
                    state = state.after(decision)
                    decided.append(row)
                rows.append(row)
            self._save_team_cursors(session, decided)
            return rows

    def _team_state(self, session: Session) -> TeamState:
        return TeamState(store.team_cursors(session), store.open_assignment_counts(session),
                         frozenset(store.away_reps(session, self.clock())))

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

    def _admit_one(self, session: Session, mailbox: str, uidvalidity: int, uid: int,
                   raw: bytes | SpooledMessage, state: TeamState, parsed: Parsed | None,
                   adoptable: bool, arrived: datetime | None = None) -> tuple[MessageRow, Decision | None]:
        """The row and the new decision (None: a known message under a new UID, decided before)."""
        parsed = parsed or parse_one(raw, self.config.parse)  # (the parser process did it in a backlog)
        sha, key = parsed.sha256, parsed.content_key
        adopted = adoptable and self._adopt_after_uidvalidity_change(session, mailbox, uidvalidity, uid, sha)
        if adopted:
            return adopted, None
        # an unreadable message is quarantined, never a "duplicate" of other junk
        earlier = parsed.inquiry and session.scalars(_SAME_CONTENT, {
            "key": key, "mailbox": mailbox, "since": self.clock() - DUPLICATE_WINDOW}).first()
        if earlier:
            examined = Examined(None, Decision(
                Outcome.DUPLICATE, f"same message as #{earlier.id} in {earlier.mailbox} ({earlier.outcome})"))
        else:
            examined = self._look_up_and_examine(session, raw, state, parsed)
        row = self._write_message(session, mailbox, uidvalidity, uid, parsed.size, sha, key, examined, earlier,
                                  arrived=arrived)
        if examined.decision.outcome is Outcome.ROUTED:
            self._assign_and_queue(session, row, raw, examined, mailbox)
        elif examined.inquiry is not None and examined.decision.outcome is Outcome.IGNORED:
            self._note_rep_out_of_office(session, examined.inquiry)  # not on a forged one (Unrecognized)
        return row, examined.decision

    def _look_up_and_examine(self, session: Session, raw: bytes | SpooledMessage, state: TeamState,
                             parsed: Parsed) -> Examined:
        """Registry lookup then examine. A lookup that raises (a bad key, a registry bug) sends this
        one message to Quarantine with the error as its reason, so the rest of the batch goes on.
        (A database error inside the lookup still fails the batch: no per-message savepoint yet.)"""
        try:
            looked_up = self._look_up(session, parsed.inquiry, parsed.sender_keys)
        except Exception as exc:
            log.exception("registry lookup failed for %s", parsed.inquiry and parsed.inquiry.message_id)
            return Examined(parsed.inquiry, Decision(
                Outcome.QUARANTINED, f"registry lookup error: {type(exc).__name__}: {exc}"))
        examined = examine(raw, self.config, state, lambda _q: looked_up and looked_up.match, parsed)
        return replace(examined, looked_up=looked_up)

    def _write_message(self, session: Session, mailbox: str, uidvalidity: int, uid: int, size: int,
                       sha: str, key: str, examined: Examined, earlier: MessageRow | None,
                       source: str = "INBOX", arrived: datetime | None = None) -> MessageRow:
        """A message's row, in one INSERT with everything known up front (no ORM flush, no
        UPDATE after it); returns the row as written, outside the session."""
        values = self._message_values(mailbox, source, uidvalidity, uid, size, sha, key, examined)
        if arrived is not None:
            values["received_at"] = arrived
        if earlier:
            values.update(duplicate_of=earlier.id, message_id=earlier.message_id, sender=earlier.sender,
                          subject=earlier.subject)
        if examined.decision.outcome is Outcome.ROUTED:
            address = next(m.address for m in self.config.mailboxes if m.name == mailbox)
            values["forward_message_id"] = forward_message_id(key, examined.decision.rep, address)
        row_id = session.execute(_INSERT_MESSAGE, values).inserted_primary_key[0]
        return MessageRow(id=row_id, **values)

    def assign_manually(self, mailbox: str, source: str, uidvalidity: int, uid: int,
                        raw: bytes | SpooledMessage, target: ManualTarget) -> MessageRow:
        """A manager moved this message into an Assign/ folder: route it as the folder says.

        The message's existing row (usually an Unrecognized one) is taken over, so its history
        stays one row; its location becomes the Assign/ folder until it is filed again.
        """
        with self._lock, self.sessions.begin() as session:
            existing = session.scalars(select(MessageRow).where(
                MessageRow.mailbox == mailbox, MessageRow.source == source,
                MessageRow.uidvalidity == uidvalidity, MessageRow.uid == uid)).first()
            if existing:
                return existing  # seen before a restart: the round will file it once sent
            examined = examine_manual(raw, self.config, self._team_state(session), target, source)
            sha, key, size = fingerprints(raw)
            row = session.scalars(select(MessageRow).where(
                MessageRow.mailbox == mailbox, MessageRow.content_key == key)
                .order_by(MessageRow.id.desc()).limit(1)).first()
            if row is None:
                row = self._write_message(session, mailbox, uidvalidity, uid, size, sha, key, examined,
                                          None, source=source)
            else:
                self._retarget(row, examined.decision)
                row.source, row.uidvalidity, row.uid = source, uidvalidity, uid
            if examined.decision.outcome is Outcome.ROUTED:
                self._assign_and_queue(session, row, raw, examined, mailbox)
                self._save_team_cursors(session, [row])
            elif (target.kind == "ignore" and self.config.registry.block_not_inquiry
                  and examined.inquiry and examined.inquiry.sender):
                block_sender(session, examined.inquiry.sender, f"filed as not an inquiry from {source}",
                             self.clock())
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

    def _retarget(self, row: MessageRow, decision: Decision) -> None:
        row.folder, keywords = destination(decision, self.config)
        row.keywords = " ".join(keywords)
        row.outcome, row.reason, row.rule = decision.outcome.value, decision.reason, decision.rule
        row.rep, row.team, row.state = decision.rep, decision.team, store.DECIDED
        row.decided_at, row.filed_at = self.clock(), None

    def _look_up(self, session: Session, inquiry: Inquiry | None,
                 keys: SenderKeys | None = None) -> SenderLookup | None:
        if inquiry is None or not self.config.registry.enabled:
            return None
        return lookup_sender(session, inquiry, self.config.parse.free_mail_domains, self.clock(),
                             self.config.registry.quiet_days, keys)

    def _adopt_after_uidvalidity_change(self, session: Session, mailbox: str, uidvalidity: int,
                                        uid: int, sha: str) -> MessageRow | None:
        """The same bytes under a new UID in the same mailbox are the same message, not a copy."""
        row = session.scalars(select(MessageRow).where(
            MessageRow.mailbox == mailbox, MessageRow.raw_sha256 == sha, MessageRow.source == "INBOX",
            MessageRow.state != store.FILED, MessageRow.uidvalidity != uidvalidity)).first()
        if row:
            log.info("message #%d %s: UIDVALIDITY changed, now uid %d", row.id, row.message_id, uid)
            row.uidvalidity, row.uid = uidvalidity, uid
        return row

    def _message_values(self, mailbox: str, source: str, uidvalidity: int, uid: int, size: int, sha: str,
                        key: str, examined: Examined) -> dict:
        decision, q = examined.decision, examined.inquiry
        folder, keywords = destination(decision, self.config)
        now = self.clock()
        return dict(
            mailbox=mailbox, source=source, uidvalidity=uidvalidity, uid=uid, raw_sha256=sha, content_key=key,
            size=size, state=store.DECIDED, outcome=decision.outcome.value,
            reason=decision.reason, rule=decision.rule, rep=decision.rep, team=decision.team,
            folder=folder, keywords=" ".join(keywords),
            message_id=q.message_id[:500] if q else "", sender=q.sender if q else "",
            subject=q.subject[:500] if q else "", country=q.country if q else None,
            language=q.language if q else None, products=" ".join(q.products) if q else "",
            received_at=now, decided_at=now, file_attempts=0,
        )

    def _assign_and_queue(self, session: Session, row: MessageRow, raw: bytes | SpooledMessage,
                          examined: Examined, mailbox_name: str) -> None:
        q, decision = examined.inquiry, examined.decision
        assert q is not None and decision.rep is not None
        rep = self.config.reps[decision.rep]
        mailbox = next(m for m in self.config.mailboxes if m.name == mailbox_name)
        now = self.clock()
        row.forward_message_id = forward_message_id(row.content_key, rep.id, mailbox.address)
        reply = self._reply_target(examined)
        spec = ForwardSpec(
            shared_address=mailbox.address, shared_name=mailbox.display_name,
            rep_address=rep.email, rep_name=rep.name, message_id=row.forward_message_id,
            subject=tag_subject(self.config.subject_format, q, decision), language=rep.language,
            extra=dict(decision.notes) | reply_note(reply), labels=tag_labels(self.config.labels, q, decision),
            marker_key=self.config.marker_key, reply=reply)
        try:
            forward = queued_forward(raw, q, decision, spec, self.templates, now.astimezone(self.config.timezone))
        except ForwardError as exc:  # e.g. no address a Reply could reach: the manager must look
            self._downgrade(session, row, Decision(Outcome.UNRECOGNIZED, f"{decision.reason}; cannot forward: {exc}",
                                          rule=decision.rule))
            return
        member_of = team_of(self.config, rep.id)
        team = decision.team or (member_of.id if member_of else None)
        # plain INSERTs: nothing reads these back as objects in this transaction (issue 7)
        session.execute(_INSERT_ASSIGNMENT, dict(
            message=row.id, rep=rep.id, team=team, customer=q.sender, assigned_at=now, how=decision.how,
            ladder=decision.ladder or self.config.sla.default_ladder,
            due_at=self._first_reply_due(team, rep.id, reply_clock_start(decision.how, None, now, row.received_at),
                                         decision.ladder),
            forward_message_id=row.forward_message_id, suspect_reply_to=reply.suspect or None))
        session.execute(_INSERT_OUTBOX, dict(
            mailbox=mailbox.name, message=row.id, sender=mailbox.address, recipient=rep.email, **forward,
            next_attempt_at=now, deadline=now + timedelta(seconds=self.config.smtp.retry_deadline)))
        if self.config.registry.enabled and (decision.how != "manual" or self.config.registry.learn_from_manual):
            if why := never_a_customer(q.sender, self.config.own_addresses, self.config.own_domains):
                log.info("registry: %s not recorded as a customer: %s", q.sender, why)
                return
            record_routed(session, q, rep.id, now, self.config.registry.source, message_row=row.id,
                          quiet_days=self.config.registry.quiet_days, reason=_handover_reason(decision),
                          looked_up=examined.looked_up, learn_aliases=decision.how == "manual")

    def _reply_target(self, examined: Examined) -> ReplyTarget:
        assert examined.inquiry is not None
        known = examined.match is not None and not examined.match.lapsed
        return reply_target(examined.inquiry, self.config.own_addresses, self.config.own_domains, known)

    def _first_reply_due(self, team: str | None, rep: str, now: datetime,
                         ladder_name: str | None = None) -> datetime | None:
        """The first ladder step's time: +5 min in business hours, next opening + grace outside."""
        ladder = self.config.sla.ladder(ladder_name)
        if not ladder.steps:
            return None
        calendar = self.config.sla.calendar_for(team)
        return step_time(ladder.steps[0], ladder, AssignmentSnapshot(rep, now), calendar)

    def _downgrade(self, session: Session, row: MessageRow, decision: Decision) -> None:
        folder, keywords = destination(decision, self.config)
        values = dict(folder=folder, keywords=" ".join(keywords), outcome=decision.outcome.value,
                      reason=decision.reason, rep=None, team=None, forward_message_id=None)
        for name, value in values.items():
            setattr(row, name, value)
        if row not in session:  # written by _write_message: the session does not track it
            session.execute(MessageRow.__table__.update().where(MessageRow.id == row.id).values(**values))

    def admit_spooled(self, mailbox: str, uidvalidity: int, uid: int, original: SpooledMessage,
                      arrived: datetime | None = None) -> MessageRow:
        """`admit_batch` for one big message held in a spool file: decided from the facts the
        scan gathered; its forward streams from the file."""
        parsed = parse_spooled(original, self.config.parse)
        with self._lock, self.sessions.begin() as session:
            row, decision = self._admit_one(session, mailbox, uidvalidity, uid, original, self._team_state(session),
                                            parsed, self._has_unfiled_from_other_validity(session, mailbox, uidvalidity),
                                            arrived)
            if decision is not None:
                self._save_team_cursors(session, [row])
            return row

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
        ordered, known = sorted(candidates), set()
        with self.sessions() as session:
            for start in range(0, len(ordered), 5000):  # stay under SQL parameter limits
                known.update(session.scalars(select(MessageRow.uid).where(
                    MessageRow.mailbox == mailbox, MessageRow.source == source,
                    MessageRow.uidvalidity == uidvalidity,
                    MessageRow.uid.in_(ordered[start:start + 5000]))))
        return known

    def mark_filed(self, rows: list[MessageRow], note: str = "") -> None:
        now = self.clock()
        ids = [row.id for row in rows]
        with store.durable_transaction(self.sessions) as session:  # "filed" must outlive a failing disk
            for start in range(0, len(ids), 1000):  # stay under SQL parameter limits
                session.execute(MessageRow.__table__.update().where(MessageRow.id.in_(ids[start:start + 1000]))
                                .values(state=store.FILED, filed_at=now, last_error=None))
        for row in rows:
            log_decision(row, now, note)
            self.metrics.message_decided(row.outcome)

    def mark_filing_failed(self, rows: list[MessageRow], error: str) -> None:
        with self.sessions.begin() as session:
            for row in rows:
                session.execute(MessageRow.__table__.update().where(MessageRow.id == row.id)
                                .values(file_attempts=MessageRow.file_attempts + 1, last_error=error))


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
