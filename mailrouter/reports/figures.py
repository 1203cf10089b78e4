"""Report figures, aggregated in SQL so that a million assignments come back in seconds.

How (SQLAlchemy Core, portable to SQLite >= 3.30 and PostgreSQL; Python only reshapes the few
aggregated rows that come back):
1. The scope's assignments are read once into a narrow temporary table (rows.py).
2. Three "cubes" count and sum them per key and reply-time bucket, one pass each for the
   groupings that share a source: people (rep, team), message (rule, country, language) and
   products; a second, smaller pass per family counts business-time buckets. Every figure
   of a grouping is a sum over its family's cube (a few thousand rows).
3. Percentiles come from the bucket counts plus a ranking of the rows inside the one bucket
   that holds each rank (percentiles.py), so they stay exact without sorting every row once
   per grouping and clock, which is what made the year report take minutes.

Definitions, so the figures can be checked by hand:
- A rep's figures count the assignments *given to that rep* in [since, until) (by
  `assigned_at`); a reassignment ends one row and starts another, so each rep keeps their own.
- Percentiles are nearest-rank: the p-th percentile of n sorted reply times is the value at
  1-based rank ceil(p * n / 100). The median is p50 in that sense, so with an even count it is
  the lower of the two middle values (always a reply time that really happened).
- The 5/30/60-minute thresholds count replies on the SLA clock: business time, or wall time
  where business time was not recorded. "Within 5 min" is <= 300 s, "over 5 min" is > 300 s.
- Unanswered: assigned minus replied (open or ended). Never answered: no reply, and the assignment ended (reassigned, pooled, undeliverable) or is
  still open past its due time at `now`.
- Share: the group's assignments over all assignments in the period and team filter (a rep
  filter does not shrink the denominator, so a rep's share still means "of the team").
- Fairness: within a team, a rep's share of the team's assignments over the team average share
  (1 / number of members); 1.0 is an even split, 0.5 is half of it.
- Backlog (backlog.py) and the headline figures against the previous period (headline.py)
  have their definitions there.
- Products are space-separated in `messages.products`; an assignment counts once for each
  product it names (matched with LIKE on ' products ', so no JSON or string splitting in SQL).
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from sqlalchemy import (ColumnElement, Connection, Float, Integer, String, Table, case,
                        func, literal, literal_column, select, union_all)
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause, Select, Subquery

from mailrouter.store import AssignmentRow, CollisionRow, MessageRow
from mailrouter.reports.backlog import Backlog, backlog
from mailrouter.reports.headline import Headlines, headlines
from mailrouter.reports.slowest import Slow, slowest
from mailrouter.reports.percentiles import CLOCKS, TARGETS, CANDIDATES, Key, KeySource, candidates_select, exact_values, targets_select
from mailrouter.reports.rows import ROWS, period_id_range, rows_select, sort_threads, temp_table, temporary

A = AssignmentRow.__table__
M = MessageRow.__table__
C = CollisionRow.__table__

REASSIGNED = "reassigned"
THRESHOLDS = (300, 1800, 3600)  # seconds: the 5 / 30 / 60 minute columns
# Edges (seconds, on the SLA clock) of the first-reply distribution chart.
HISTOGRAM_EDGES = (300, 900, 1800, 3600, 4 * 3600, 24 * 3600)
MAX_BUCKETS = 300  # time-series points; also bounds the bucket CASE tree (rows.bucket_index)


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

    @property
    def unanswered(self) -> int:
        """No reply yet, open or ended: what a manager chases."""
        return self.assigned - self.replied


@dataclass(frozen=True)
class Fairness:
    team: str
    rep: str
    assigned: int
    share_in_team: float
    team_average_share: float
    ratio: float


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
    headlines: Headlines | None = None  # this period against the previous one
    slowest: tuple[Slow, ...] = ()


GROUPINGS = ("rep", "team", "rule", "country", "language", "product")
# Groupings counted together: one cube (one pass over the report's rows) serves each family.
FAMILIES = {"people": ("team", "rep"), "message": ("rule", "country", "language"),
            "products": ("products",)}
FAMILY = {"rep": "people", "team": "people", "rule": "message", "country": "message",
          "language": "message", "product": "products"}
# The SLA clock's classes: fine enough for both the thresholds and the chart's buckets.
CLASS_EDGES = tuple(sorted(set(THRESHOLDS) | set(HISTOGRAM_EDGES)))
STATS = (("n", Integer), ("wall_sum", Float), ("business_n", Integer), ("business_sum", Float),
         ("replied", Integer), ("met_due", Integer), ("never", Integer), ("reassigned", Integer))


def compute_report(session: Session, scope: Scope, now: datetime, *, tz: tzinfo = timezone.utc,
                   members: Mapping[str, Sequence[str]] | None = None,
                   names: Mapping[str, str] | None = None) -> Report:
    """All figures of one report. `members` (team -> reps, from config) lets fairness count
    members who got nothing; `tz` sets where the chart's days begin."""
    conn = session.connection()
    starts = bucket_starts(scope.period, tz)
    with ExitStack() as stack:
        stack.enter_context(sort_threads(conn))
        rows = stack.enter_context(temporary(conn, ROWS, _rows_source(conn, scope, now, starts)))
        cubes = {family: _cubes(stack, conn, rows, family, scope) for family in FAMILIES}
        sources = _key_sources(conn, cubes["products"][0])
        values = _percentiles(stack, conn, rows, cubes, sources, scope)
        people = cubes["people"][0]
        total = conn.execute(select(func.coalesce(func.sum(people.c.n), 0))).scalar_one()
        collisions = collision_counts(session, scope)
        by = {g: grouped(conn, scope, g, cubes[FAMILY[g]][0], sources[g], values, total,
                         collisions if g == "rep" else None) if g in sources else ()
              for g in GROUPINGS}
        waiting_now = backlog(session, now)

        def waiting(at: datetime) -> Backlog:  # counted once for now: the usual period end
            return waiting_now if at == now else backlog(session, at)

        return Report(
            scope=scope, generated_at=now, total=total, by_rep=by["rep"], by_team=by["team"],
            by_rule=by["rule"], by_country=by["country"], by_language=by["language"],
            by_product=by["product"], fairness=fairness(conn, people, scope, members or {}),
            backlog=waiting_now, series=series(conn, rows, scope, starts),
            histogram=histogram(conn, people, scope), names=dict(names or {}),
            headlines=headlines(session, *_bounds(scope), now, scope.teams, scope.reps, waiting),
            slowest=slowest(session, *_bounds(scope), now, scope.teams, scope.reps))


def _bounds(scope: Scope) -> tuple[datetime, datetime]:
    return scope.period.since, scope.period.until


def _rows_source(conn: Connection, scope: Scope, now: datetime, starts: list[datetime]
                 ) -> Select | None:
    period = scope.period
    id_range = period_id_range(conn, period.since, period.until)
    if id_range is None:
        return None
    return rows_select(period.since, period.until, scope.teams, id_range, now, starts,
                       CLASS_EDGES, REASSIGNED)


def _rep_filter(table: Table, scope: Scope) -> list[ColumnElement[bool]]:
    """The rep filter, where the table still has reps (the people cube keeps every rep so
    that fairness and shares see the whole team)."""
    return [table.c.rep.in_(scope.reps)] if scope.reps and "rep" in table.c else []


def _cube_tables(family: str) -> tuple[Table, Table]:
    keys = [(k, String) for k in FAMILIES[family]]
    return (temp_table(f"report_{family}_wall", *keys, ("wall_bucket", Integer),
                       ("sla_class", Integer), *STATS),
            temp_table(f"report_{family}_business", *keys, ("business_bucket", Integer),
                       ("n", Integer)))


CUBES = {family: _cube_tables(family) for family in FAMILIES}


def _cubes(stack: ExitStack, conn: Connection, rows: Table, family: str, scope: Scope
           ) -> tuple[Table, Table]:
    """The family's counts and sums per key, wall-time bucket and SLA class; and its counts per
    key and business-time bucket. At most keys x buckets rows, whatever the assignments."""
    r, (wall, business) = rows.c, CUBES[family]
    where = [] if family == "people" else _rep_filter(rows, scope)
    wall_groups = [*(r[k] for k in FAMILIES[family]), r.wall_bucket, r.sla_class]
    wall_select = select(*wall_groups, func.count(), func.sum(r.wall), func.count(r.business),
                         func.sum(r.business), func.sum(r.replied), func.sum(r.met_due),
                         func.sum(r.never), func.sum(r.reassigned)
                         ).where(*where).group_by(*wall_groups)
    business_groups = [*(r[k] for k in FAMILIES[family]), r.business_bucket]
    business_select = select(*business_groups, func.count()).where(*where).group_by(*business_groups)
    return (stack.enter_context(temporary(conn, wall, wall_select)),
            stack.enter_context(temporary(conn, business, business_select)))


def _key_sources(conn: Connection, products_cube: Table) -> dict[str, KeySource]:
    """How each grouping reads its key from a table holding its column ('' when unknown)."""
    def column(name: str) -> KeySource:
        return lambda t: (func.coalesce(t.c[name], literal_column("''")), t)

    sources = {g: column(g) for g in GROUPINGS if g != "product"}
    products = _products_table(conn, products_cube)
    if products is not None:
        def product(t: Table) -> tuple[ColumnElement[str], FromClause]:
            padded = literal(" ") + t.c.products + literal(" ")
            return products.c.product, t.join(products, padded.like(products.c.pattern, escape="\\"))
        sources["product"] = product
    return sources


def _products_table(conn: Connection, products_cube: Table) -> Subquery | None:
    """One row per product named in the report, with its LIKE pattern (wildcards escaped).

    The names come from the distinct `products` strings (few, however many assignments), so
    the grouping itself stays in SQL.
    """
    distinct = conn.scalars(select(products_cube.c.products).distinct())
    names = sorted({p for text in distinct if text for p in text.split()})
    if not names:
        return None
    rows = [select(literal(n, String).label("product"),
                   literal("% " + _like_escape(n) + " %", String).label("pattern"))
            for n in names]
    return (union_all(*rows) if len(rows) > 1 else rows[0]).subquery("products")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _percentiles(stack: ExitStack, conn: Connection, rows: Table,
                 cubes: Mapping[str, tuple[Table, Table]], sources: Mapping[str, KeySource],
                 scope: Scope) -> dict[Key, float]:
    """Median and p90 of both clocks for every group: bucket counts from the cubes locate each
    rank, then only the rows in those buckets are ranked (see percentiles.py)."""
    targets = []
    for grouping, source in sources.items():
        for clock, cube in zip(CLOCKS, cubes[FAMILY[grouping]]):
            bucket = cube.c[CLOCKS[clock][1]]
            key, from_ = source(cube)
            hist = (select(key.label("key"), bucket.label("bucket"), func.sum(cube.c.n).label("n"))
                    .select_from(from_).where(bucket.is_not(None), *_rep_filter(cube, scope))
                    .group_by(key, bucket))
            targets.append(targets_select(grouping, clock, hist))
    stack.enter_context(temporary(conn, TARGETS, union_all(*targets)))
    stack.enter_context(temporary(conn, CANDIDATES, candidates_select(rows, _rep_filter(rows, scope))))
    return exact_values(conn, sources.items())


def collision_counts(session: Session, scope: Scope) -> dict[str, int]:
    where = [C.c.at >= scope.period.since, C.c.at < scope.period.until]
    if scope.reps:
        where.append(C.c.rep.in_(scope.reps))
    rows = session.execute(select(C.c.rep, func.count()).where(*where).group_by(C.c.rep))
    return {rep: n for rep, n in rows}


def _sum_if(condition: ColumnElement[bool], value: ColumnElement[int]) -> ColumnElement[int]:
    return func.sum(case((condition, value), else_=0))


def grouped(conn: Connection, scope: Scope, grouping: str, cube: Table, source: KeySource,
            values: Mapping[Key, float], total: int, collisions: Mapping[str, int] | None = None
            ) -> tuple[GroupFigures, ...]:
    """The figures of every group of one grouping (rep, team, ...), summed from its cube."""
    key, from_ = source(cube)
    c, within = cube.c, CLASS_EDGES.index(THRESHOLDS[0])
    stmt = select(
        key, func.sum(c.n), func.sum(c.replied), _sum_if(c.wall_bucket.is_not(None), c.n),
        func.sum(c.wall_sum), func.sum(c.business_n), func.sum(c.business_sum),
        _sum_if(c.sla_class <= within, c.replied),
        *(_sum_if(c.sla_class > CLASS_EDGES.index(t), c.replied) for t in THRESHOLDS),
        func.sum(c.met_due), func.sum(c.never), func.sum(c.reassigned),
    ).select_from(from_).where(*_rep_filter(cube, scope)).group_by(key).order_by(key)
    return tuple(_figures(grouping, row, values, total, collisions) for row in conn.execute(stmt))


def _reply_times(grouping: str, clock: str, key: str, n: int, total: float | None,
                 values: Mapping[Key, float]) -> ReplyTimes:
    mean = None if not n or total is None else float(total) / n
    return ReplyTimes(values.get((grouping, clock, key, 50)), mean,
                      values.get((grouping, clock, key, 90)))


def _figures(grouping: str, row: Sequence, values: Mapping[Key, float], total: int,
             collisions: Mapping[str, int] | None) -> GroupFigures:
    key, assigned, replied, wall_n, wall_sum, business_n, business_sum = row[:7]
    counts = [int(v or 0) for v in row[7:]]
    return GroupFigures(
        key=key, assigned=assigned, replied=int(replied or 0),
        share=assigned / total if total else 0.0,
        wall=_reply_times(grouping, "wall", key, int(wall_n or 0), wall_sum, values),
        business=_reply_times(grouping, "business", key, int(business_n or 0), business_sum, values),
        within_5m=counts[0], over_5m=counts[1], over_30m=counts[2], over_60m=counts[3],
        met_due=counts[4], never_answered=counts[5], reassigned_away=counts[6],
        collisions=None if collisions is None else collisions.get(key, 0))


def fairness(conn: Connection, people: Table, scope: Scope, members: Mapping[str, Sequence[str]]
             ) -> tuple[Fairness, ...]:
    """Each rep's share of their team's assignments against the team average share.

    Counted without the rep filter, so filtering on one rep still compares them with the team.
    """
    stmt = (select(people.c.team, people.c.rep, func.sum(people.c.n))
            .where(people.c.team.is_not(None)).group_by(people.c.team, people.c.rep))
    counts: dict[str, dict[str, int]] = {}
    for team, rep, n in conn.execute(stmt):
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


def series(conn: Connection, rows: Table, scope: Scope, starts: list[datetime]) -> Series:
    """Volume per team and SLA met per time bucket (each row's bucket was set in `rows`)."""
    team = func.coalesce(rows.c.team, literal_column("''"))
    stmt = (select(rows.c.day, team, func.count(), func.sum(rows.c.with_due),
                   func.sum(rows.c.met_due))
            .where(*_rep_filter(rows, scope)).group_by(rows.c.day, team))
    volume: dict[str, list[int]] = {}
    due, met = [0] * len(starts), [0] * len(starts)
    for i, team, n, n_due, n_met in conn.execute(stmt):
        volume.setdefault(team, [0] * len(starts))[i] += n
        due[i] += int(n_due or 0)
        met[i] += int(n_met or 0)
    return Series(tuple(starts), {t: tuple(v) for t, v in sorted(volume.items())},
                  tuple(due), tuple(met))


def histogram(conn: Connection, people: Table, scope: Scope) -> Histogram:
    """Replies per rep in SLA-clock buckets (see HISTOGRAM_EDGES), from the SLA classes."""
    stmt = (select(people.c.rep, people.c.sla_class, func.sum(people.c.n))
            .where(people.c.sla_class.is_not(None), *_rep_filter(people, scope))
            .group_by(people.c.rep, people.c.sla_class))
    counts: dict[str, list[int]] = {}
    for rep, cls, n in conn.execute(stmt):
        edge = CLASS_EDGES[cls] if cls < len(CLASS_EDGES) else math.inf
        counts.setdefault(rep, [0] * (len(HISTOGRAM_EDGES) + 1))[bisect_left(HISTOGRAM_EDGES, edge)] += n
    return Histogram(HISTOGRAM_EDGES, {r: tuple(c) for r, c in sorted(counts.items())})
