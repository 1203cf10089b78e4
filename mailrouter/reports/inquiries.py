"""One row per assignment of the period, for the per-inquiry CSV (render.render_inquiries_csv)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from mailrouter.store import AssignmentRow, MessageRow, UTCDateTime

A = AssignmentRow.__table__
M = MessageRow.__table__


@dataclass(frozen=True)
class InquiryRow:
    assigned_at: datetime
    rep: str
    team: str | None
    buyer: str
    subject: str
    country: str | None
    language: str | None
    rule: str | None
    due_at: datetime | None
    first_reply_at: datetime | None
    business_seconds: float | None
    wall_seconds: float | None
    end_reason: str | None


def inquiries(session: Session, since: datetime, until: datetime, teams: tuple[str, ...] = (),
              reps: tuple[str, ...] = ()) -> list[InquiryRow]:
    where = [A.c.assigned_at >= literal(since, UTCDateTime), A.c.assigned_at < literal(until, UTCDateTime),
             *([A.c.team.in_(teams)] if teams else []), *([A.c.rep.in_(reps)] if reps else [])]
    stmt = (select(A.c.assigned_at, A.c.rep, A.c.team, A.c.customer.label("buyer"),
                   func.coalesce(M.c.subject, "").label("subject"), M.c.country, M.c.language,
                   M.c.rule, A.c.due_at, A.c.first_reply_at,
                   A.c.reply_business_seconds.label("business_seconds"),
                   A.c.reply_seconds.label("wall_seconds"), A.c.end_reason)
            .select_from(A.outerjoin(M, A.c.message == M.c.id)).where(*where)
            .order_by(A.c.assigned_at, A.c.id))
    return [InquiryRow(**row._mapping) for row in session.execute(stmt)]
