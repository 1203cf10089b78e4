"""The report's rows, read once: the scope's assignments with their message's facts, in a
narrow temporary table, and small temporary tables aggregated from it.

Everything a report shows is counted from this table, so the big tables are read once per
report, in storage order, and each later pass reads only the columns it needs. Per-row
facts that several figures share (value buckets, the SLA class, flags, the chart's day) are
computed here once. Standard SQL via SQLAlchemy Core; temporary tables exist on SQLite and
PostgreSQL alike and vanish with the connection (they are also dropped after each report).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import (Column, ColumnElement, Connection, Float, Integer, MetaData, String,
                        Table, and_, case, cast, func, literal, literal_column, or_, select)
from sqlalchemy.sql import CompoundSelect, Select

from mailrouter.store import AssignmentRow, MessageRow, UTCDateTime

A = AssignmentRow.__table__
M = MessageRow.__table__
TEMP = MetaData()  # never created by create_all: these tables live for one report

ROWS = Table(
    "report_rows", TEMP,
    Column("rep", String), Column("team", String), Column("rule", String),
    Column("country", String), Column("language", String), Column("products", String),
    Column("wall", Float), Column("business", Float),
    Column("wall_bucket", Integer), Column("business_bucket", Integer),
    Column("sla_class", Integer),  # see sla_class(); NULL when neither clock was recorded
    Column("replied", Integer), Column("met_due", Integer), Column("with_due", Integer),
    Column("never", Integer), Column("reassigned", Integer),
    Column("day", Integer),  # index of the chart's time bucket
    prefixes=["TEMPORARY"])


BUCKET_STEP = 2  # seconds per bucket below 100 s; x10 per decade above (2 % to 20 % wide)


def value_bucket(v: ColumnElement[float], step: int = BUCKET_STEP) -> ColumnElement[int]:
    """A bucket number that never decreases as `v` grows: `step` seconds wide below 100 s,
    10 * step below 1000 s, and so on, so a bucket is at most step * 10 % of its values and
    the bucket holding a percentile holds few rows. NULL stays NULL (NULL arithmetic). Only
    the order matters: CAST truncates on SQLite and rounds on PostgreSQL, and as each piece
    starts where the last one ends, both keep the buckets in order."""
    pieces, per_decade = [], 90 // step  # buckets a decade adds (100 -> 1000 s at 10*step...)
    for decade in range(4):
        upper, width = 100 * 10 ** decade, step * 10 ** decade
        pieces.append((v < upper, decade * per_decade + cast(v / width, Integer)))
    return case(*pieces, else_=4 * per_decade + cast(v / (step * 10 ** 4), Integer))


def sla_class(clock: ColumnElement[float], edges: Sequence[int]) -> ColumnElement[int]:
    """i for edges[i-1] < clock <= edges[i]; len(edges) above the last; NULL without a clock."""
    return case((clock.is_(None), None), *((clock <= e, i) for i, e in enumerate(edges)),
                else_=len(edges))


def bucket_index(column: ColumnElement[datetime], starts: Sequence[datetime]) -> ColumnElement[int]:
    """The index of the last start <= column, as a balanced tree of CASEs (log2 of the number
    of buckets comparisons a row, in any dialect and time zone; the caller knows every value
    is >= starts[0])."""
    def tree(lo: int, hi: int) -> ColumnElement[int]:
        if hi - lo == 1:
            return literal_column(str(lo), Integer)
        mid = (lo + hi) // 2
        return case((column < literal(starts[mid], UTCDateTime), tree(lo, mid)), else_=tree(mid, hi))
    return tree(0, len(starts))


def flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def rows_select(since: datetime, until: datetime, teams: Sequence[str], id_range: tuple[int, int],
                now: datetime, starts: Sequence[datetime], class_edges: Sequence[int],
                reassigned: str) -> Select:
    """The scope's assignments (period and team filter; the rep filter is applied later, so
    shares and fairness still see the whole team). The id range lets SQLite read the period
    in storage order rather than jump through the assigned_at index row by row."""
    wall, business = A.c.reply_seconds, A.c.reply_business_seconds
    replied = A.c.first_reply_at.is_not(None)
    where = [A.c.id.between(*id_range), A.c.assigned_at >= since, A.c.assigned_at < until]
    if teams:
        where.append(A.c.team.in_(teams))
    return select(
        A.c.rep, A.c.team, M.c.rule, M.c.country, M.c.language, M.c.products, wall, business,
        value_bucket(wall), value_bucket(business),
        sla_class(func.coalesce(business, wall), class_edges),
        flag(replied), flag(and_(A.c.due_at.is_not(None), A.c.first_reply_at <= A.c.due_at)),
        flag(A.c.due_at.is_not(None)),
        flag(and_(~replied, or_(A.c.ended_at.is_not(None), A.c.due_at < literal(now, UTCDateTime)))),
        flag(A.c.end_reason == reassigned),
        bucket_index(A.c.assigned_at, starts),
    ).select_from(A.outerjoin(M, A.c.message == M.c.id)).where(*where)


def period_id_range(conn: Connection, since: datetime, until: datetime) -> tuple[int, int] | None:
    """First and last assignment id in the period, read from the assigned_at index alone."""
    lo, hi = conn.execute(select(func.min(A.c.id), func.max(A.c.id)).where(
        A.c.assigned_at >= since, A.c.assigned_at < until)).one()
    return None if lo is None else (lo, hi)


@contextmanager
def temporary(conn: Connection, table: Table, source: Select | CompoundSelect | None
              ) -> Iterator[Table]:
    """Create `table` as a temporary table filled from `source`; drop it afterwards.

    Not dropped when the report fails: PostgreSQL rolls the creation back with the failed
    transaction, and on SQLite the next report drops what is left before creating it.
    """
    table.drop(conn, checkfirst=True)
    table.create(conn)
    if source is not None:
        conn.execute(table.insert().from_select([c.name for c in table.columns], source))
    yield table
    table.drop(conn)


@contextmanager
def sort_threads(conn: Connection, threads: int = 2) -> Iterator[None]:
    """Let SQLite sort the report's cubes on `threads` threads (its default is one); other
    databases plan their own parallelism."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = int(conn.exec_driver_sql("PRAGMA threads").scalar_one())
    conn.exec_driver_sql(f"PRAGMA threads = {int(threads)}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA threads = {before}")


def temp_table(name: str, *columns: tuple[str, type]) -> Table:
    """A temporary table definition (ints, floats or strings), for the small aggregates."""
    return Table(name, TEMP, *(Column(n, t) for n, t in columns), prefixes=["TEMPORARY"])
