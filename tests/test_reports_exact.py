"""The SQL report against a brute-force count in Python, on awkward random data.

compute_report finds percentiles by counting per value bucket, then ranking inside one bucket
(mailrouter/reports/percentiles.py); these tests hold it to the plain definitions: ties,
values on bucket edges, huge and tiny times, missing business time, LIKE wildcards in product
names, and every filter.
"""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Float, create_engine, literal, literal_column, select, text
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.reports.figures import (GroupFigures, Period, Report, ReplyTimes, Scope,
                                        bucket_starts, compute_report)
from mailrouter.reports.rows import bucket_index, value_bucket
from mailrouter.store import AssignmentRow, MessageRow, UTCDateTime

UTC = timezone.utc
SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)
NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
EDGES = [0.0, 0.5, 99.999, 100.0, 100.5, 999.99, 1000.0, 9999.5, 10_000.0, 100_000.0, 250_000.0]
PRODUCTS = ["valves", "pipe_fittings", "pipexfittings", "50%_off", "pumps"]


@dataclass(frozen=True)
class Row:
    rep: str
    team: str | None
    rule: str | None
    country: str | None
    language: str | None
    products: str
    assigned_at: datetime
    wall: float | None
    business: float | None
    ended: bool
    reason: str | None


def random_rows(n: int, seed: int) -> list[Row]:
    rng = random.Random(seed)
    reps = [("ann", "north"), ("bob", "north"), ("cy", "south"), ("dee", None)]
    tied = [rng.choice(EDGES) for _ in range(5)]  # a few values that recur many times
    rows = []
    for _ in range(n):
        rep, team = rng.choice(reps)
        wall = rng.choice([None, rng.choice(EDGES), rng.choice(tied), rng.uniform(0, 5000),
                           rng.lognormvariate(6.4, 2.0)])
        business = None if wall is None or rng.random() < 0.2 else wall * rng.choice([1, 0.5, rng.random()])
        ended = wall is None and rng.random() < 0.5
        rows.append(Row(
            rep, team, rng.choice(["r1", "r2", None]), rng.choice(["DE", "FR", None]),
            rng.choice(["en", "de"]), " ".join(rng.sample(PRODUCTS, rng.choice([0, 1, 2, 3]))),
            SINCE + timedelta(seconds=rng.uniform(-5 * 86400, 36 * 86400)), wall, business,
            ended, rng.choice(["reassigned", "pooled"]) if ended else None))
    return rows


def make_db(factory: sessionmaker[Session], rows: list[Row]) -> sessionmaker[Session]:
    with factory() as session:
        for i, r in enumerate(rows, start=1):
            session.add(MessageRow(
                id=i, mailbox="sales", uidvalidity=1, uid=i, raw_sha256=f"{i:064x}",
                content_key=f"{i:064x}", state="filed", outcome="routed", rule=r.rule,
                folder="Routed", country=r.country, language=r.language, products=r.products,
                received_at=r.assigned_at, decided_at=r.assigned_at))
        session.flush()  # messages before the assignments that point at them
        for i, r in enumerate(rows, start=1):
            session.add(AssignmentRow(
                id=i, message=i, rep=r.rep, team=r.team, customer=f"c{i}@x.example",
                assigned_at=r.assigned_at, due_at=r.assigned_at + timedelta(minutes=15),
                first_reply_at=None if r.wall is None else r.assigned_at + timedelta(seconds=r.wall),
                reply_seconds=r.wall, reply_business_seconds=r.business,
                ended_at=r.assigned_at + timedelta(hours=1) if r.ended else None,
                end_reason=r.reason))
        session.commit()
    return factory


def nearest_rank(values: list[float], p: int) -> float | None:
    ordered = sorted(values)
    return ordered[(len(ordered) * p + 99) // 100 - 1] if ordered else None


def times(values: list[float]) -> ReplyTimes:
    return ReplyTimes(nearest_rank(values, 50), sum(values) / len(values) if values else None,
                      nearest_rank(values, 90))


def expected(rows: Iterable[Row], key: Callable[[Row], Iterable[str]], total: int
             ) -> dict[str, GroupFigures]:
    """The figures by definition (see the figures.py docstring), one group at a time."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        for k in key(r):
            groups[k].append(r)
    out = {}
    for k, rs in groups.items():
        replied = [r for r in rs if r.wall is not None]
        sla = [r.business if r.business is not None else r.wall for r in replied]
        out[k] = GroupFigures(
            key=k, assigned=len(rs), replied=len(replied), share=len(rs) / total,
            wall=times([r.wall for r in replied]),
            business=times([r.business for r in replied if r.business is not None]),
            within_5m=sum(s <= 300 for s in sla), over_5m=sum(s > 300 for s in sla),
            over_30m=sum(s > 1800 for s in sla), over_60m=sum(s > 3600 for s in sla),
            met_due=sum(r.wall <= 900 for r in replied),
            never_answered=sum(r.wall is None and (r.ended or r.assigned_at + timedelta(minutes=15) < NOW)
                               for r in rs),
            reassigned_away=sum(r.reason == "reassigned" for r in rs), collisions=None)
    return out


KEYS: dict[str, Callable[[Row], Iterable[str]]] = {
    "by_rep": lambda r: [r.rep], "by_team": lambda r: [r.team or ""],
    "by_rule": lambda r: [r.rule or ""], "by_country": lambda r: [r.country or ""],
    "by_language": lambda r: [r.language or ""], "by_product": lambda r: r.products.split(),
}


def assert_matches(report: Report, rows: list[Row], scope: Scope) -> None:
    period = [r for r in rows if SINCE <= r.assigned_at < UNTIL]
    in_teams = [r for r in period if not scope.teams or r.team in scope.teams]
    chosen = [r for r in in_teams if not scope.reps or r.rep in scope.reps]
    assert report.total == len(in_teams)
    for attribute, key in KEYS.items():
        want = expected(chosen, key, len(in_teams))
        got = {g.key: g for g in getattr(report, attribute)}
        assert got.keys() == want.keys(), attribute
        for k, g in got.items():
            w = want[k]
            assert g.wall.mean == pytest.approx(w.wall.mean) and g.business.mean == pytest.approx(w.business.mean)
            exact = dict(wall=ReplyTimes(g.wall.median, w.wall.mean, g.wall.p90),
                         business=ReplyTimes(g.business.median, w.business.mean, g.business.p90),
                         collisions=None)
            assert GroupFigures(**{**g.__dict__, **exact}) == w, (attribute, k)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("scope", [
    Scope(Period(SINCE, UNTIL)),
    Scope(Period(SINCE, UNTIL), teams=("north",)),
    Scope(Period(SINCE, UNTIL), reps=("ann", "dee")),
], ids=["all", "team", "reps"])
def test_report_matches_brute_force(sessions: sessionmaker[Session], tmp_path: Path, seed: int, scope: Scope) -> None:
    rows = random_rows(600, seed)
    factory = make_db(sessions, rows)
    with factory() as session:
        report = compute_report(session, scope, NOW)
        again = compute_report(session, scope, NOW)  # the temporary tables were cleaned up
    assert_matches(report, rows, scope)
    assert again.by_rep == report.by_rep and again.by_product == report.by_product


def test_one_value_everywhere_and_empty_period(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """All replies in one bucket (ranking happens among all of them); a period with nothing."""
    rows = [Row("ann", "north", "r1", "DE", "en", "valves", SINCE + timedelta(hours=i),
                100.0 if i % 3 else 100.5, 100.0, False, None) for i in range(50)]
    factory = make_db(sessions, rows)
    with factory() as session:
        report = compute_report(session, Scope(Period(SINCE, UNTIL)), NOW)
        empty = compute_report(session, Scope(Period(UNTIL, UNTIL + timedelta(days=1))), NOW)
    assert_matches(report, rows, Scope(Period(SINCE, UNTIL)))
    ann = report.by_rep[0]  # 33 times 100.0 then 17 times 100.5: ranks 25 and 45
    assert (ann.wall.median, ann.wall.p90, ann.business.median) == (100.0, 100.5, 100.0)
    assert (empty.total, empty.by_rep, empty.by_product, empty.histogram.counts) == (0, (), (), {})
    assert sum(empty.series.with_due) == 0


def test_value_buckets_never_decrease_and_stay_narrow() -> None:
    engine = create_engine("sqlite://")
    values = sorted(EDGES + [random.Random(3).uniform(0, 3e6) for _ in range(3000)])
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE v (x REAL)"))
        conn.execute(text("INSERT INTO v VALUES (:x)"), [{"x": x} for x in values])
        x = literal_column("x", Float)
        got = conn.execute(select(x, value_bucket(x)).select_from(text("v")).order_by(x)).all()
    assert all(a[1] <= b[1] for a, b in zip(got, got[1:]))
    by_bucket: dict[int, list[float]] = defaultdict(list)
    for value, bucket in got:
        by_bucket[bucket].append(value)
    assert all(max(vs) - min(vs) <= max(2.0, 0.2 * min(vs)) for vs in by_bucket.values())


def test_bucket_index_is_the_last_start_before() -> None:
    starts = bucket_starts(Period(SINCE, UNTIL), timezone(timedelta(hours=8)))
    engine = create_engine("sqlite://")
    probes = [starts[0], starts[0] + timedelta(hours=23), starts[7], starts[7] - timedelta(seconds=1),
              starts[-1], starts[-1] + timedelta(hours=5)]
    with engine.connect() as conn:
        for probe in probes:
            want = max(i for i, s in enumerate(starts) if s <= probe)
            got = conn.execute(select(bucket_index(literal(probe, UTCDateTime), starts))).scalar_one()
            assert got == want, probe
