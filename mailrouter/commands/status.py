"""`mailrouter status`: the daemon's health as the database records it, for a person at a shell.

It reads only the database (WAL lets it read while the daemon writes), so it works whether
or not the daemon is running, and answers the questions asked on a bad morning: is mail still
being handled, is anything stuck, are reps behind?
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.config.schema import Config
from mailrouter.reports.backlog import Backlog, backlog
from mailrouter.store import FILED, AssignmentRow, MessageRow, OutboxRow


@dataclass(frozen=True)
class LastMessage:
    at: datetime
    message_id: str
    outcome: str


@dataclass(frozen=True)
class MailboxStatus:
    name: str
    last: LastMessage | None
    today: dict[str, int]  # outcome -> messages received since local midnight
    unfiled: int
    oldest_unfiled_age: timedelta | None


@dataclass(frozen=True)
class StatusSummary:
    now: datetime
    mailboxes: tuple[MailboxStatus, ...]
    outbox_depth: int
    outbox_oldest_age: timedelta | None  # since the message arrived
    open_assignments: int
    overdue_assignments: int  # open and past their first-reply due time
    failing_outbox: int = 0  # pending forwards that failed at least once
    backlog: Backlog = Backlog(0, None, None)  # waiting for a person: the report's definition


def status_summary(sessions: sessionmaker[Session], config: Config, now: datetime) -> StatusSummary:
    since = local_midnight(now, config)
    with sessions() as session:
        mailboxes = tuple(_mailbox_status(session, name, now, since)
                          for name in _mailbox_names(session, config))
        depth, oldest, failing = _outbox(session)
        open_count, overdue = _assignments(session, now)
        waiting = backlog(session, now)
    return StatusSummary(now, mailboxes, depth, _age(now, oldest), open_count, overdue, failing, waiting)


def local_midnight(now: datetime, config: Config) -> datetime:
    """'Today' is the company's day (config timezone), not UTC's."""
    local = now.astimezone(config.timezone)
    return datetime.combine(local.date(), time(0), tzinfo=config.timezone)


def _mailbox_names(session: Session, config: Config) -> list[str]:
    # Configured ones first, then any the database still has from a mailbox since removed.
    names = [m.name for m in config.mailboxes]
    stored = session.scalars(select(MessageRow.mailbox).distinct()).all()
    return names + sorted(set(stored) - set(names))


def _mailbox_status(session: Session, name: str, now: datetime, since: datetime) -> MailboxStatus:
    last = session.execute(select(MessageRow.received_at, MessageRow.message_id, MessageRow.outcome)
                           .where(MessageRow.mailbox == name)
                           .order_by(MessageRow.received_at.desc(), MessageRow.id.desc()).limit(1)).first()
    today = Counter(dict(session.execute(
        select(MessageRow.outcome, func.count()).where(
            MessageRow.mailbox == name, MessageRow.received_at >= since).group_by(MessageRow.outcome)).all()))
    unfiled, oldest = session.execute(select(func.count(), func.min(MessageRow.received_at)).where(
        MessageRow.mailbox == name, MessageRow.state != FILED)).one()
    return MailboxStatus(name, LastMessage(*last) if last else None, dict(sorted(today.items())),
                         int(unfiled), _age(now, oldest))


def _outbox(session: Session) -> tuple[int, datetime | None, int]:
    pending = OutboxRow.status == "pending"
    # Outer join: a notice (SLA reminder) has no message row but still waits in the outbox.
    depth, oldest = session.execute(
        select(func.count(OutboxRow.id), func.min(MessageRow.received_at))
        .select_from(OutboxRow).outerjoin(MessageRow, MessageRow.id == OutboxRow.message)
        .where(pending)).one()
    failing = session.scalar(select(func.count()).select_from(OutboxRow)
                             .where(pending, OutboxRow.attempts > 0)) or 0
    return int(depth), oldest, int(failing)


def _assignments(session: Session, now: datetime) -> tuple[int, int]:
    is_open = (AssignmentRow.first_reply_at.is_(None), AssignmentRow.ended_at.is_(None))
    open_count = session.scalar(select(func.count()).select_from(AssignmentRow).where(*is_open)) or 0
    overdue = session.scalar(select(func.count()).select_from(AssignmentRow).where(
        *is_open, AssignmentRow.due_at.is_not(None), AssignmentRow.due_at < now)) or 0
    return int(open_count), int(overdue)


def _age(now: datetime, then: datetime | None) -> timedelta | None:
    if then is None:
        return None
    if then.tzinfo is None:  # an aggregate can drop the column type's UTC marker
        then = then.replace(tzinfo=timezone.utc)
    return max(now - then, timedelta(0))


# -- text

def format_status(summary: StatusSummary) -> str:
    lines = [f"mailrouter status at {summary.now:%Y-%m-%d %H:%M:%S %Z}"]
    for mb in summary.mailboxes:
        lines.append(f"mailbox {mb.name}:")
        if mb.last:
            lines.append(f"  last message   {format_age(summary.now - mb.last.at)} ago, "
                         f"{mb.last.outcome} {mb.last.message_id or '(no Message-ID)'}")
        else:
            lines.append("  last message   none yet")
        today = ", ".join(f"{n} {outcome}" for outcome, n in mb.today.items()) or "none"
        lines.append(f"  today          {today}")
        lines.append(f"  not yet filed  {mb.unfiled}" + _oldest(mb.oldest_unfiled_age))
    lines.append(f"outbox           {summary.outbox_depth} waiting" + _oldest(summary.outbox_oldest_age)
                 + (f", {summary.failing_outbox} being retried" if summary.failing_outbox else ""))
    lines.append(f"assignments      {summary.open_assignments} awaiting a first reply, "
                 f"{summary.overdue_assignments} overdue")
    b = summary.backlog
    lines.append(f"waiting          {b.count} for a person"
                 + _oldest(None if b.oldest_age_seconds is None else timedelta(seconds=b.oldest_age_seconds)))
    return "\n".join(lines)


def _oldest(age: timedelta | None) -> str:
    return f" (oldest {format_age(age)})" if age is not None else ""


def format_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"
