"""Report figures, aggregated in SQL so that a million assignments come back in seconds.

Everything here is one SQL statement per table of the report (SQLAlchemy Core, portable to
SQLite >= 3.30 and PostgreSQL); Python only reshapes the few aggregated rows that come back.

Definitions, so the figures can be checked by hand:
- A rep's figures count the assignments *given to that rep* in [since, until) (by
  `assigned_at`); a reassignment ends one row and starts another, so each rep keeps their own.
- Percentiles are nearest-rank: the p-th percentile of n sorted reply times is the value at
  1-based rank ceil(p * n / 100). The median is p50 in that sense, so with an even count it is
  the lower of the two middle values (always a reply time that really happened).
- The 5/30/60-minute thresholds count replies on the SLA clock: business time, or wall time
  where business time was not recorded. "Within 5 min" is <= 300 s, "over 5 min" is > 300 s.
- Never answered: no reply, and the assignment ended (reassigned, pooled, undeliverable) or is
  still open past its due time at `now`.
- Share: the group's assignments over all assignments in the period and team filter (a rep
  filter does not shrink the denominator, so a rep's share still means "of the team").
- Fairness: within a team, a rep's share of the team's assignments over the team average share
  (1 / number of members); 1.0 is an even split, 0.5 is half of it.
- Products are space-separated in `messages.products`; an assignment counts once for each
  product it names (matched with LIKE on ' products ', so no JSON or string splitting in SQL).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from sqlalchemy import (ColumnElement, Integer, String, and_, case, exists, func, literal, or_,
                        select, union_all)
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause, Subquery

from ..store import AssignmentRow, CollisionRow, MessageRow, UTCDateTime

A = AssignmentRow.__table__
M = MessageRow.__table__
C = CollisionRow.__table__

UNRECOGNIZED = "unrecognized"
REASSIGNED = "reassigned"
THRESHOLDS = (300, 1800, 3600)  # seconds: the 5 / 30 / 60 minute columns
# Edges (seconds, on the SLA clock) of the first-reply distribution chart.
HISTOGRAM_EDGES = (300, 900, 1800, 3600, 4 * 3600, 24 * 3600)
MAX_BUCKETS = 300  # time-series points; also keeps the UNION under SQLite's 500-term limit


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("report periods use aware datetimes")
        if self.until <= self.since:
            raise ValueError("the period ends before it starts")


@dataclass(frozen=True)
class Scope:
    """Which assignments a report covers: a period, optionally some teams and/or reps."""

    period: Period
    teams: tuple[str, ...] = ()
    reps: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplyTimes:
    median: float | None
    mean: float | None
    p90: float | None


@dataclass(frozen=True)
class GroupFigures:
    key: str  # rep id, team id, rule, country, language or product ("" when unknown)
    assigned: int
    replied: int
    share: float
    wall: ReplyTimes
    business: ReplyTimes
    within_5m: int
    over_5m: int
    over_30m: int
    over_60m: int
    met_due: int  # replied by due_at
    never_answered: int
    reassigned_away: int
    collisions: int | None  # per rep only; None where the grouping has no meaning for it


@dataclass(frozen=True)
class Fairness:
    team: str
    rep: str
    assigned: int
    share_in_team: float
    team_average_share: float
    ratio: float


@dataclass(frozen=True)
class Backlog:
    count: int
    oldest_received_at: datetime | None
    oldest_age_seconds: float | None


@dataclass(frozen=True)
class Series:
    """Per time bucket (a local day, or longer for long periods): volume and SLA met."""

    starts: tuple[datetime, ...]
    volume_by_team: dict[str, tuple[int, ...]]
    with_due: tuple[int, ...]
    met_due: tuple[int, ...]


@dataclass(frozen=True)
class Histogram:
    edges: tuple[int, ...]  # bucket i is (edges[i-1], edges[i]]; the last is > edges[-1]
    counts: dict[str, tuple[int, ...]]  # per rep


@dataclass(frozen=True)
class Report:
    scope: Scope
    generated_at: datetime
    total: int
    by_rep: tuple[GroupFigures, ...]
    by_team: tuple[GroupFigures, ...]
    by_rule: tuple[GroupFigures, ...]
    by_country: tuple[GroupFigures, ...]
    by_language: tuple[GroupFigures, ...]
    by_product: tuple[GroupFigures, ...]
    fairness: tuple[Fairness, ...]
    backlog: Backlog
    series: Series
    histogram: Histogram
    names: dict[str, str] = field(default_factory=dict)  # rep id -> display name


GROUPINGS = ("rep", "team", "rule", "country", "language", "product")


def compute_report(session: Session, scope: Scope, now: datetime, *, tz: tzinfo = timezone.utc,
                   members: Mapping[str, Sequence[str]] | None = None,
                   names: Mapping[str, str] | None = None) -> Report:
    """All figures of one report. `members` (team -> reps, from config) lets fairness count
    members who got nothing; `tz` sets where the chart's days begin."""
    total = scope_total(session, scope)
    collisions = collision_counts(session, scope)
    by_rep = grouped(session, scope, now, "rep", total, collisions)
    return Report(
        scope=scope, generated_at=now, total=total, by_rep=by_rep,
        by_team=grouped(session, scope, now, "team", total),
        by_rule=grouped(session, scope, now, "rule", total),
        by_country=grouped(session, scope, now, "country", total),
        by_language=grouped(session, scope, now, "language", total),
        by_product=grouped(session, scope, now, "product", total),
        fairness=fairness(session, scope, members or {}),
        backlog=backlog(session, now),
        series=series(session, scope, tz),
        histogram=histogram(session, scope),
        names=dict(names or {}),
    )


def _where(scope: Scope, *, reps: bool = True) -> list[ColumnElement[bool]]:
    clauses = [A.c.assigned_at >= scope.period.since, A.c.assigned_at < scope.period.until]
    if scope.teams:
        clauses.append(A.c.team.in_(scope.teams))
    if reps and scope.reps:
        clauses.append(A.c.rep.in_(scope.reps))
    return clauses


def scope_total(session: Session, scope: Scope) -> int:
    """The share denominator: the period and team filter, not the rep filter."""
    return session.execute(select(func.count()).select_from(A).where(*_where(scope, reps=False))
                           ).scalar_one()


def collision_counts(session: Session, scope: Scope) -> dict[str, int]:
    where = [C.c.at >= scope.period.since, C.c.at < scope.period.until]
    if scope.reps:
        where.append(C.c.rep.in_(scope.reps))
    rows = session.execute(select(C.c.rep, func.count()).where(*where).group_by(C.c.rep))
    return {rep: n for rep, n in rows}


def _sla_clock() -> ColumnElement[float]:
    return func.coalesce(A.c.reply_business_seconds, A.c.reply_seconds)


def _products_table(session: Session, scope: Scope) -> Subquery | None:
    """One row per product named in the period, with its LIKE pattern (wildcards escaped).

    The names come from the distinct `products` strings (few, however many assignments), so
    the grouping itself stays in SQL.
    """
    distinct = session.scalars(select(M.c.products).distinct().select_from(
        A.join(M, A.c.message == M.c.id)).where(*_where(scope)))
    names = sorted({p for text in distinct if text for p in text.split()})
    if not names:
        return None
    rows = [select(literal(n, String).label("product"),
                   literal("% " + _like_escape(n) + " %", String).label("pattern"))
            for n in names]
    return (union_all(*rows) if len(rows) > 1 else rows[0]).subquery("products")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _key_and_source(session: Session, scope: Scope, grouping: str
                    ) -> tuple[ColumnElement[str], FromClause] | None:
    with_message = A.join(M, A.c.message == M.c.id)
    if grouping in ("rep", "team"):
        return A.c[grouping], A
    if grouping in ("rule", "country", "language"):
        return M.c[grouping], with_message
    products = _products_table(session, scope)
    if products is None:
        return None
    padded = literal(" ") + M.c.products + literal(" ")
    return products.c.product, with_message.join(
        products, padded.like(products.c.pattern, escape="\\"))


def _ranked(key: ColumnElement[str], source: FromClause, scope: Scope) -> Subquery:
    """Assignment rows with their rank by reply time within their group (nulls last)."""
    key = func.coalesce(key, "")
    wall, business = A.c.reply_seconds, A.c.reply_business_seconds
    return select(
        key.label("key"), wall.label("wall"), business.label("business"),
        _sla_clock().label("sla"), A.c.first_reply_at, A.c.ended_at, A.c.end_reason, A.c.due_at,
        func.row_number().over(partition_by=key, order_by=wall.asc().nulls_last()).label("rn_wall"),
        func.count(wall).over(partition_by=key).label("n_wall"),
        func.row_number().over(partition_by=key, order_by=business.asc().nulls_last()).label("rn_business"),
        func.count(business).over(partition_by=key).label("n_business"),
    ).select_from(source).where(*_where(scope)).subquery("ranked")


def _nearest_rank(q: Subquery, clock: str, p: int) -> ColumnElement[float]:
    """The value at rank ceil(p*n/100), in integer arithmetic so both dialects agree."""
    n, rn = q.c["n_" + clock], q.c["rn_" + clock]
    return func.max(case((rn == (n * p + 99) // 100, q.c[clock])))


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def grouped(session: Session, scope: Scope, now: datetime, grouping: str, total: int,
            collisions: Mapping[str, int] | None = None) -> tuple[GroupFigures, ...]:
    """The figures of every group of one grouping (rep, team, rule, ...), in one statement."""
    found = _key_and_source(session, scope, grouping)
    if found is None:
        return ()
    q = _ranked(*found, scope)
    replied = q.c.first_reply_at.is_not(None)
    never = and_(q.c.first_reply_at.is_(None),
                 or_(q.c.ended_at.is_not(None), q.c.due_at < literal(now, UTCDateTime)))
    stmt = select(
        q.c.key, func.count(), func.count(q.c.first_reply_at),
        _nearest_rank(q, "wall", 50), func.avg(q.c.wall), _nearest_rank(q, "wall", 90),
        _nearest_rank(q, "business", 50), func.avg(q.c.business), _nearest_rank(q, "business", 90),
        _count_if(and_(replied, q.c.sla <= THRESHOLDS[0])),
        *(_count_if(and_(replied, q.c.sla > t)) for t in THRESHOLDS),
        _count_if(and_(replied, q.c.due_at.is_not(None), q.c.first_reply_at <= q.c.due_at)),
        _count_if(never), _count_if(q.c.end_reason == REASSIGNED),
    ).group_by(q.c.key).order_by(q.c.key)
    return tuple(_figures(row, total, collisions) for row in session.execute(stmt))


def _figures(row: Sequence, total: int, collisions: Mapping[str, int] | None) -> GroupFigures:
    key, assigned, replied, *times = row[:9]
    counts = [int(v or 0) for v in row[9:]]
    f = [None if v is None else float(v) for v in times]
    return GroupFigures(
        key=key, assigned=assigned, replied=replied, share=assigned / total if total else 0.0,
        wall=ReplyTimes(*f[0:3]), business=ReplyTimes(*f[3:6]),
        within_5m=counts[0], over_5m=counts[1], over_30m=counts[2], over_60m=counts[3],
        met_due=counts[4], never_answered=counts[5], reassigned_away=counts[6],
        collisions=None if collisions is None else collisions.get(key, 0))


def fairness(session: Session, scope: Scope, members: Mapping[str, Sequence[str]]
             ) -> tuple[Fairness, ...]:
    """Each rep's share of their team's assignments against the team average share.

    Counted without the rep filter, so filtering on one rep still compares them with the team.
    """
    stmt = (select(A.c.team, A.c.rep, func.count()).where(*_where(scope, reps=False),
                                                          A.c.team.is_not(None))
            .group_by(A.c.team, A.c.rep))
    counts: dict[str, dict[str, int]] = {}
    for team, rep, n in session.execute(stmt):
        counts.setdefault(team, {})[rep] = n
    for team, reps in members.items():  # members who got nothing are the least fair case
        if scope.teams and team not in scope.teams:
            continue
        for rep in reps:
            counts.setdefault(team, {}).setdefault(rep, 0)
    return tuple(row for team in sorted(counts) for row in _team_fairness(team, counts[team])
                 if not scope.reps or row.rep in scope.reps)


def _team_fairness(team: str, counts: Mapping[str, int]) -> list[Fairness]:
    total, average = sum(counts.values()), 1 / len(counts)
    rows = []
    for rep in sorted(counts):
        share = counts[rep] / total if total else 0.0
        rows.append(Fairness(team, rep, counts[rep], share, average, share / average))
    return rows


def backlog(session: Session, now: datetime) -> Backlog:
    """Unrecognized messages nobody has assigned yet: a state now, not a figure of the period."""
    assigned = exists().where(A.c.message == M.c.id)
    count, oldest = session.execute(
        select(func.count(), func.min(M.c.received_at)).where(M.c.outcome == UNRECOGNIZED, ~assigned)
    ).one()
    age = None if oldest is None else (now - oldest).total_seconds()
    return Backlog(count, oldest, age)


def bucket_starts(period: Period, tz: tzinfo) -> list[datetime]:
    """Local midnights (in `tz`) from the period's first day; days, or longer steps so that a
    long period still gives at most MAX_BUCKETS points."""
    first = period.since.astimezone(tz).date()
    last = (period.until - timedelta(microseconds=1)).astimezone(tz).date()
    days = (last - first).days + 1
    step = 1 if days <= 92 else 7 if days <= 7 * MAX_BUCKETS else math.ceil(days / MAX_BUCKETS)
    return [_local_midnight(first + timedelta(days=i), tz) for i in range(0, days, step)]


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tz).astimezone(timezone.utc)


def _buckets_table(starts: list[datetime], until: datetime) -> Subquery:
    """Bucket bounds as a literal table, so the database does the bucketing in any dialect
    and in any time zone (no dialect-specific date functions, DST handled in Python)."""
    ends = starts[1:] + [max(until, starts[-1] + timedelta(days=1))]
    rows = [select(literal(i, Integer).label("i"), literal(s, UTCDateTime).label("start"),
                   literal(e, UTCDateTime).label("end"))
            for i, (s, e) in enumerate(zip(starts, ends))]
    return (union_all(*rows) if len(rows) > 1 else rows[0]).subquery("buckets")


def series(session: Session, scope: Scope, tz: tzinfo) -> Series:
    starts = bucket_starts(scope.period, tz)
    b = _buckets_table(starts, scope.period.until)
    on = and_(A.c.assigned_at >= b.c.start, A.c.assigned_at < b.c.end)
    with_due = A.c.due_at.is_not(None)
    stmt = (select(b.c.i, func.coalesce(A.c.team, ""), func.count(), _count_if(with_due),
                   _count_if(and_(with_due, A.c.first_reply_at <= A.c.due_at)))
            .select_from(A.join(b, on)).where(*_where(scope)).group_by(b.c.i, A.c.team))
    volume: dict[str, list[int]] = {}
    due, met = [0] * len(starts), [0] * len(starts)
    for i, team, n, n_due, n_met in session.execute(stmt):
        volume.setdefault(team, [0] * len(starts))[i] += n
        due[i] += int(n_due or 0)
        met[i] += int(n_met or 0)
    return Series(tuple(starts), {t: tuple(v) for t, v in sorted(volume.items())},
                  tuple(due), tuple(met))


def histogram(session: Session, scope: Scope) -> Histogram:
    """Replies per rep in SLA-clock buckets (see HISTOGRAM_EDGES)."""
    clock = _sla_clock()
    bucket = case(*((clock <= edge, i) for i, edge in enumerate(HISTOGRAM_EDGES)),
                  else_=len(HISTOGRAM_EDGES))
    # Grouped in an outer query: PostgreSQL will not match a GROUP BY expression holding
    # bound parameters against the same expression in the SELECT list.
    q = select(A.c.rep, bucket.label("bucket")).where(*_where(scope), clock.is_not(None)).subquery()
    stmt = select(q.c.rep, q.c.bucket, func.count()).group_by(q.c.rep, q.c.bucket)
    counts: dict[str, list[int]] = {}
    for rep, i, n in session.execute(stmt):
        counts.setdefault(rep, [0] * (len(HISTOGRAM_EDGES) + 1))[i] = n
    return Histogram(HISTOGRAM_EDGES, {r: tuple(c) for r, c in sorted(counts.items())})
