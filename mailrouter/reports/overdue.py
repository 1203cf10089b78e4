"""What is overdue now: open assignments past their first-reply due time, oldest first."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from mailrouter.store import AssignmentRow, MessageRow, SlaStepRow, UTCDateTime
from mailrouter.reports.render import align_table, duration

A = AssignmentRow.__table__
M = MessageRow.__table__
S = SlaStepRow.__table__


@dataclass(frozen=True)
class Overdue:
    assignment: int
    rep: str
    team: str | None
    customer: str
    subject: str
    assigned_at: datetime
    due_at: datetime
    age_seconds: float  # since it was assigned
    overdue_seconds: float  # since it fell due
    last_step: str | None  # the last ladder step taken (sla_steps), e.g. "escalate@15m"
    last_step_at: datetime | None


def overdue_now(session: Session, now: datetime, *, teams: Sequence[str] = (),
                reps: Sequence[str] = ()) -> list[Overdue]:
    """Unanswered, not ended and past due at `now`; the latest step by a correlated subquery
    (one row per assignment, so the list stays cheap however long the step history)."""
    latest = (select(S.c.id).where(S.c.assignment == A.c.id)
              .order_by(S.c.done_at.desc(), S.c.id.desc()).limit(1).correlate(A).scalar_subquery())
    stmt = (select(A.c.id, A.c.rep, A.c.team, A.c.customer, func.coalesce(M.c.subject, ""),
                   A.c.assigned_at, A.c.due_at, S.c.step, S.c.done_at)
            .select_from(A.join(M, A.c.message == M.c.id).outerjoin(S, S.c.id == latest))
            .where(A.c.first_reply_at.is_(None), A.c.ended_at.is_(None),
                   A.c.due_at < literal(now, UTCDateTime))
            .order_by(A.c.assigned_at, A.c.id))
    if teams:
        stmt = stmt.where(A.c.team.in_(teams))
    if reps:
        stmt = stmt.where(A.c.rep.in_(reps))
    return [Overdue(i, rep, team, customer, subject, at, due, (now - at).total_seconds(),
                    (now - due).total_seconds(), step, step_at)
            for i, rep, team, customer, subject, at, due, step, step_at in session.execute(stmt)]


HEADERS = {
    "en": ("Rep", "Team", "Customer", "Subject", "Assigned", "Waiting", "Overdue by", "Last step"),
    "zh": ("业务员", "团队", "客户", "主题", "分配时间", "已等待", "超时", "最近升级步骤"),
}


def overdue_rows(items: Sequence[Overdue], names: Mapping[str, str], tz: tzinfo) -> list[list[str]]:
    return [[names.get(o.rep, o.rep), o.team or "—", o.customer, _short(o.subject, 40),
             f"{o.assigned_at.astimezone(tz):%Y-%m-%d %H:%M}", duration(o.age_seconds),
             duration(o.overdue_seconds), o.last_step or "—"] for o in items]


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line: a subject may hold CR/LF
    return text if len(text) <= limit else text[:limit - 1] + "…"


def render_overdue(items: Sequence[Overdue], names: Mapping[str, str], tz: tzinfo,
                   language: str) -> str:
    headers = HEADERS["zh" if language.startswith("zh") else "en"]
    if not items:
        return ("没有超时未回复的询盘。" if language.startswith("zh") else "Nothing is overdue.") + "\n"
    return align_table(headers, overdue_rows(items, names, tz)) + "\n"
