"""The inquiries a manager should look at: the unanswered ones, longest waiting first, then
the slowest answered ones (business time). Buyer and subject are the customer's own text:
every format escapes or neutralises them (render.py)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from mailrouter.reports.rows import period_id_range
from mailrouter.store import AssignmentRow, MessageRow, UTCDateTime

A = AssignmentRow.__table__
M = MessageRow.__table__
LIMIT = 10


@dataclass(frozen=True)
class Slow:
    rep: str
    buyer: str
    subject: str
    assigned_at: datetime
    replied: bool
    seconds: float | None  # business reply time; for an unanswered one, wall time waited by now
    end_reason: str | None


def slowest(session: Session, since: datetime, until: datetime, now: datetime,
            teams: tuple[str, ...] = (), reps: tuple[str, ...] = (), limit: int = LIMIT
            ) -> tuple[Slow, ...]:
    ids = period_id_range(session.connection(), since, until)
    if ids is None:
        return ()
    where = [A.c.id.between(*ids),  # the period in storage order (see rows.py)
             A.c.assigned_at >= literal(since, UTCDateTime), A.c.assigned_at < literal(until, UTCDateTime),
             *([A.c.team.in_(teams)] if teams else []), *([A.c.rep.in_(reps)] if reps else [])]
    cols = (A.c.rep, A.c.customer, func.coalesce(M.c.subject, ""), A.c.assigned_at,
            A.c.reply_business_seconds, A.c.end_reason)
    base = select(*cols).select_from(A.outerjoin(M, A.c.message == M.c.id))
    waiting = session.execute(base.where(*where, A.c.first_reply_at.is_(None))
                              .order_by(A.c.assigned_at, A.c.id).limit(limit)).all()
    answered = session.execute(base.where(*where, A.c.reply_business_seconds.is_not(None))
                               .order_by(A.c.reply_business_seconds.desc(), A.c.id)
                               .limit(max(limit - len(waiting), 0))).all()
    return (*(Slow(rep, buyer, subject, at, False, (now - at).total_seconds(), reason)
              for rep, buyer, subject, at, _, reason in waiting),
            *(Slow(rep, buyer, subject, at, True, float(seconds), reason)
              for rep, buyer, subject, at, seconds, reason in answered))
