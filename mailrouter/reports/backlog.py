"""The backlog: every inquiry waiting for a person, defined once for the report, the digest
and `status`.

An inquiry waits for a person when nobody holds it and it was put before a person: it is in
Unrecognized (no rule matched), its forward could not be delivered, or the ladder gave up and
returned it to the pool or the manager, or set it aside in Quarantine (it could not parse the
original again within the parse bounds). Something holds it when an assignment of it is open or
answered. Judged at an instant from the recorded times, so the same definition gives the
backlog now and at the end of an earlier period; what a manager did later (filing it as not
an inquiry) is judged by the message's outcome today.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from mailrouter.store import AssignmentRow, MessageRow, UTCDateTime

A = AssignmentRow.__table__
M = MessageRow.__table__

# Outcomes that leave the message with a person; end reasons that hand an assignment back.
WAITING_OUTCOMES = ("unrecognized", "undeliverable")
HANDED_BACK = ("pooled", "undeliverable", "quarantined")


@dataclass(frozen=True)
class Backlog:
    count: int
    oldest_received_at: datetime | None
    oldest_age_seconds: float | None


def waiting_at(at: datetime) -> ColumnElement[bool]:
    """True for a `messages` row that waits for a person at `at` (see the module docstring)."""
    t = literal(at, UTCDateTime)
    held = exists().where(A.c.message == M.c.id, A.c.assigned_at <= t,
                          or_(A.c.first_reply_at <= t, A.c.ended_at.is_(None), A.c.ended_at > t))
    # Uncorrelated, so the database reads the handed-back assignments once (not once a message);
    # the outcome test comes first and leaves `held` to the few candidates.
    handed_back = select(A.c.message).where(A.c.end_reason.in_(HANDED_BACK), A.c.ended_at <= t)
    return and_(M.c.received_at <= t,
                or_(M.c.outcome.in_(WAITING_OUTCOMES),
                    and_(M.c.outcome == "routed", M.c.id.in_(handed_back))),
                ~held)


def backlog(session: Session, at: datetime) -> Backlog:
    """How many inquiries wait for a person at `at`, and since when the oldest one does."""
    count, oldest = session.execute(select(func.count(), func.min(M.c.received_at))
                                    .where(waiting_at(at))).one()
    if oldest is not None and oldest.tzinfo is None:  # an aggregate can drop the UTC marker
        oldest = oldest.replace(tzinfo=at.tzinfo)
    age = None if oldest is None else (at - oldest).total_seconds()
    return Backlog(int(count), oldest, age)
