"""The figures a manager reads first, for a period and for the one before it.

- Median and p90 first reply: nearest-rank (see figures.py) over the business-time reply of
  the assignments given in the period.
- Within SLA: replied by the due time, over the assignments whose outcome is known at `now`
  (replied, ended, or past due); one still open and not yet due counts neither way.
- Open and unassigned: states at the period's end (or now, if sooner): assignments awaiting a
  first reply, and the backlog (backlog.py; it has no rep, so the rep and team filters leave
  it whole).
The previous period has the same length and ends where this one starts.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from mailrouter.reports.backlog import Backlog, backlog
from mailrouter.reports.rows import period_id_range
from mailrouter.store import AssignmentRow, UTCDateTime

A = AssignmentRow.__table__
HEADLINES = ("median", "p90", "within_sla", "open", "unassigned")


@dataclass(frozen=True)
class Headline:
    since: datetime
    until: datetime
    median: float | None  # seconds, business time
    p90: float | None
    within_sla: float | None  # share 0..1
    open: int
    unassigned: int


@dataclass(frozen=True)
class Headlines:
    current: Headline
    previous: Headline

    def delta(self, name: str) -> float | None:
        """This period's figure minus the previous one's; None when either is unknown."""
        now, before = getattr(self.current, name), getattr(self.previous, name)
        return None if now is None or before is None else now - before


def _scope(teams: tuple[str, ...], reps: tuple[str, ...]) -> list[ColumnElement[bool]]:
    return [*([A.c.team.in_(teams)] if teams else []), *([A.c.rep.in_(reps)] if reps else [])]


def nearest_rank(session: Session, where: list[ColumnElement[bool]], n: int, p: int) -> float | None:
    """The p-th percentile of the n business reply times: the value at rank ceil(p * n / 100)."""
    if not n:
        return None
    value = A.c.reply_business_seconds
    found = session.scalar(select(value).where(*where, value.is_not(None))
                           .order_by(value).offset(math.ceil(p * n / 100) - 1).limit(1))
    return None if found is None else float(found)


def counts(session: Session, where: list[ColumnElement[bool]], now: datetime) -> tuple[int, int, int]:
    """(business reply times, met SLA, SLA known) in one pass over the period's assignments."""
    t = literal(now, UTCDateTime)
    known = and_(A.c.due_at.is_not(None), or_(A.c.first_reply_at.is_not(None),
                                              A.c.ended_at.is_not(None), A.c.due_at < t))
    n, met, counted = session.execute(select(
        func.count(A.c.reply_business_seconds),
        func.sum(case((and_(known, A.c.first_reply_at <= A.c.due_at), 1), else_=0)),
        func.sum(case((known, 1), else_=0))).where(*where)).one()
    return int(n or 0), int(met or 0), int(counted or 0)


def open_at(session: Session, at: datetime, where: list[ColumnElement[bool]]) -> int:
    """Assignments given by `at` and neither answered nor ended then.

    Counted as unanswered-yet + answered-after-`at`, so each part reads the first_reply_at
    index (few rows) instead of every assignment given before `at`."""
    t = literal(at, UTCDateTime)
    still = [*where, A.c.assigned_at <= t, or_(A.c.ended_at.is_(None), A.c.ended_at > t)]
    return sum(int(session.scalar(select(func.count()).select_from(A).where(*still, reply)) or 0)
               for reply in (A.c.first_reply_at.is_(None), A.c.first_reply_at > t))


def headline(session: Session, since: datetime, until: datetime, now: datetime,
             teams: tuple[str, ...] = (), reps: tuple[str, ...] = (),
             waiting: Callable[[datetime], Backlog] | None = None) -> Headline:
    """`waiting` gives the backlog at an instant (default: backlog()); the report passes the
    one it already counted for now, which is this period's end unless --until is past."""
    scope, end = _scope(teams, reps), min(until, now)
    unassigned = (waiting or (lambda at: backlog(session, at)))(end).count
    ids = period_id_range(session.connection(), since, until)
    if ids is None:  # nothing given in the period
        return Headline(since, until, None, None, None, open_at(session, end, scope), unassigned)
    # The id range lets SQLite read the period in storage order (see rows.py).
    given = [*scope, A.c.id.between(*ids), A.c.assigned_at >= literal(since, UTCDateTime),
             A.c.assigned_at < literal(until, UTCDateTime)]
    n, met, counted = counts(session, given, now)
    return Headline(since, until, nearest_rank(session, given, n, 50), nearest_rank(session, given, n, 90),
                    met / counted if counted else None, open_at(session, end, scope), unassigned)


def headlines(session: Session, since: datetime, until: datetime, now: datetime,
              teams: tuple[str, ...] = (), reps: tuple[str, ...] = (),
              waiting: Callable[[datetime], Backlog] | None = None) -> Headlines:
    before = since - (until - since)
    return Headlines(headline(session, since, until, now, teams, reps, waiting),
                     headline(session, before, since, now, teams, reps, waiting))
