"""Exact nearest-rank percentiles without sorting every row once per grouping.

Each group's reply times are first counted per value bucket (rows.value_bucket; the report's
cubes hold these counts). The running count over a group's buckets shows which bucket holds
the wanted rank r and how many of the group's values lie in earlier buckets (c); the answer
is the (r - c)-th smallest value inside that one bucket. So only the rows in such target
buckets (a few percent of the table) are ranked, all groupings in one statement.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import (BigInteger, ColumnElement, Connection, Float, Index, Integer, String,
                        Table, and_, cast, func, literal, literal_column, or_, select, true,
                        union_all)
from sqlalchemy.sql import FromClause, Select

from mailrouter.reports.rows import temp_table

PERCENTILES = (50, 90)
CLOCKS = {"wall": ("wall", "wall_bucket"), "business": ("business", "business_bucket")}

# A grouping's key over a table that has its column: (key expression, FROM clause).
KeySource = Callable[[Table], tuple[ColumnElement[str], FromClause]]
Key = tuple[str, str, str, int]  # grouping, clock, group key, percentile

TARGETS = temp_table("report_targets", ("grouping", String), ("clock", String),
                     ("key", String), ("p", Integer), ("bucket", Integer), ("k", Integer))
Index("ix_report_targets", TARGETS.c.grouping, TARGETS.c.clock, TARGETS.c.bucket, TARGETS.c.key)
CANDIDATES = temp_table(
    "report_candidates", ("rep", String), ("team", String), ("rule", String),
    ("country", String), ("language", String), ("products", String), ("wall", Float),
    ("business", Float), ("wall_bucket", Integer), ("business_bucket", Integer))


def targets_select(grouping: str, clock: str, hist: Select) -> Select:
    """From a histogram (key, bucket, n) of one grouping and clock: for each group and
    percentile, the bucket holding rank r = ceil(p * total / 100) and the rank inside it."""
    h = hist.subquery("hist")
    # Cast: PostgreSQL sums bigints as numeric, and numeric / 100 is not integer division.
    running = select(
        h.c.key, h.c.bucket, cast(h.c.n, BigInteger).label("n"),
        cast(func.sum(h.c.n).over(partition_by=h.c.key, order_by=h.c.bucket, rows=(None, 0)),
             BigInteger).label("upto"),
        cast(func.sum(h.c.n).over(partition_by=h.c.key), BigInteger).label("total"),
    ).subquery("running")
    ps = union_all(*(select(literal_column(str(p), Integer).label("p")) for p in PERCENTILES)
                   ).subquery("ps")
    rank = (running.c.total * ps.c.p + 99) // 100  # integer arithmetic, as in both dialects
    before = running.c.upto - running.c.n
    return select(literal(grouping, String), literal(clock, String), running.c.key, ps.c.p,
                  running.c.bucket, rank - before
                  ).select_from(running.join(ps, true())
                  ).where(running.c.upto >= rank, before < rank)


def candidates_select(rows: Table, where: Sequence[ColumnElement[bool]]) -> Select:
    """The rows lying in some target bucket of their clock (any group: the join comes later)."""
    def in_targets(clock: str) -> ColumnElement[bool]:
        return rows.c[CLOCKS[clock][1]].in_(
            select(TARGETS.c.bucket).where(TARGETS.c.clock == clock).distinct())
    return select(*(rows.c[c.name] for c in CANDIDATES.columns)).where(
        *where, or_(in_targets("wall"), in_targets("business")))


def exact_values(conn: Connection, sources: Iterable[tuple[str, KeySource]]) -> dict[Key, float]:
    """The value at each target's rank, read from the candidates in its bucket."""
    ranked = []
    for grouping, source in sources:
        key, from_ = source(CANDIDATES)
        for clock, (value_name, bucket_name) in CLOCKS.items():
            value, t = CANDIDATES.c[value_name], TARGETS
            on = and_(t.c.grouping == grouping, t.c.clock == clock,
                      t.c.bucket == CANDIDATES.c[bucket_name], t.c.key == key)
            part = (t.c.grouping, t.c.clock, t.c.key, t.c.p)
            ranked.append(select(*part, t.c.k, value.label("value"), func.row_number().over(
                partition_by=part, order_by=value).label("rn")).select_from(from_.join(t, on)))
    if not ranked:
        return {}
    r = union_all(*ranked).subquery("ranked")
    rows = conn.execute(select(r.c.grouping, r.c.clock, r.c.key, r.c.p, r.c.value)
                        .where(r.c.rn == r.c.k))
    values = {(g, c, key, p): float(v) for g, c, key, p, v in rows}
    wanted = conn.execute(select(func.count()).select_from(TARGETS)).scalar_one()
    if len(values) != wanted:  # a bucket or key that did not match: never guess a figure
        raise RuntimeError(f"found {len(values)} of {wanted} percentiles")
    return values
