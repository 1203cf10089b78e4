"""How long `mailrouter report` takes over 1,000,000 assignments in SQLite (run by hand).

    python bench/report_bench.py [--assignments N] [--db PATH]

Builds (or reuses, with --db) a database of N assignments over a year for 40 reps in 8
teams, then times the whole report for all reps and for one team, the overdue list and the
rendering; prints the figures and writes bench/results/report.json. The machine's load
average is recorded before and after: other work on a small machine moves these timings.
Add --profile to list the report's slowest SQL statements (all reps, whole year).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import event, func, insert, select  # noqa: E402

from mailrouter.reports.figures import Period, Scope, compute_report  # noqa: E402
from mailrouter.reports.overdue import overdue_now  # noqa: E402
from mailrouter.reports.render import render_table  # noqa: E402
from mailrouter.store import AssignmentRow, CollisionRow, MessageRow, open_database  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 11, 1, tzinfo=timezone.utc)
DAYS = 365
NOW = START + timedelta(days=DAYS)
TEAMS = {f"team{t}": [f"rep{t * 5 + i:02d}" for i in range(5)] for t in range(8)}
PRODUCTS = ["valves", "pumps", "pipe_fittings", "flanges", "gaskets", "hoses", "meters", "filters"]
COUNTRIES = ["DE", "FR", "US", "BR", "VN", "IN", "AE", "NG", "RU", "MX", "PL", "TR"]
BATCH = 50_000


def rows(n: int, rng: random.Random) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(message, assignment) pairs; replies log-normal around ten minutes, 8 % never answered."""
    reps = [(team, rep) for team, members in TEAMS.items() for rep in members]
    for i in range(1, n + 1):
        team, rep = rng.choice(reps)
        at = START + timedelta(seconds=rng.uniform(0, DAYS * 86400))
        products = " ".join(rng.sample(PRODUCTS, rng.choice((0, 1, 1, 2))))
        msg = dict(id=i, mailbox="sales", uidvalidity=1, uid=i, raw_sha256=f"{i:064x}",
                   content_key=f"{i:064x}", state="filed", outcome="routed", rule=f"rule{i % 20}",
                   folder="Routed", country=rng.choice(COUNTRIES), language=rng.choice(("en", "de", "es")),
                   products=products, received_at=at, decided_at=at)
        wall = None if rng.random() < 0.08 else rng.lognormvariate(6.4, 1.3)
        ended = at + timedelta(hours=1) if wall is None and rng.random() < 0.5 else None
        yield msg, dict(
            id=i, message=i, rep=rep, team=team, customer=f"b{i % 50000}@x.example", assigned_at=at,
            due_at=at + timedelta(minutes=15), first_reply_at=None if wall is None else at + timedelta(seconds=wall),
            reply_seconds=wall, reply_business_seconds=None if wall is None else wall * rng.uniform(0.3, 1),
            ended_at=ended, end_reason=None if ended is None else rng.choice(("reassigned", "pooled")))


def build(url: str, n: int) -> None:
    factory = open_database(url)
    rng = random.Random(5)
    with factory() as session:
        if session.scalar(select(func.count()).select_from(AssignmentRow)) == n:
            return
        batch_m: list[dict[str, Any]] = []
        batch_a: list[dict[str, Any]] = []
        for m, a in rows(n, rng):
            batch_m.append(m)
            batch_a.append(a)
            if len(batch_m) == BATCH:
                _flush(session, batch_m, batch_a)
        _flush(session, batch_m, batch_a)
        session.execute(insert(CollisionRow), [
            dict(customer=f"c{i}@x.example", owner="rep00", rep=f"rep{i % 40:02d}",
                 at=START + timedelta(hours=i)) for i in range(5000)])
        session.commit()


def _flush(session: Any, messages: list[dict[str, Any]], assignments: list[dict[str, Any]]) -> None:
    """executemany through SQLAlchemy Core, so the stored datetimes are what the daemon writes."""
    if messages:
        session.execute(insert(MessageRow), messages)
        session.execute(insert(AssignmentRow), assignments)
        session.commit()
        print(f"  {assignments[-1]['id']:,} assignments", file=sys.stderr)
    messages.clear()
    assignments.clear()


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best of `repeat` runs (warm cache); a single run when one takes more than 5 s."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
        if best > 5:
            break
    return best, result


def profile(factory: Any, run: Callable[[], Any], top: int = 12) -> None:
    """Time every statement of one run (SQLAlchemy events) and print the slowest."""
    engine, spent = factory.kw["bind"], []

    def before(conn: Any, *_: Any) -> None:
        conn.info["started"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        spent.append((time.perf_counter() - conn.info["started"], " ".join(statement.split())[:110]))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    for seconds, statement in sorted(spent, reverse=True)[:top]:
        print(f"{seconds:7.3f} s  {statement}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--assignments", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="keep the database here (reused when it has N rows)")
    parser.add_argument("--profile", action="store_true", help="print the slowest statements")
    args = parser.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="report-bench-")) / "bench.db"
    url = f"sqlite:///{db}"
    t = time.perf_counter()
    build(url, args.assignments)
    build_s = time.perf_counter() - t
    factory = open_database(url)
    load_before = os.getloadavg()
    members = {team: tuple(reps) for team, reps in TEAMS.items()}
    year, month = Period(START, NOW), Period(NOW - timedelta(days=30), NOW)
    with factory() as s:
        cases = {
            "all_reps_year": lambda: compute_report(s, Scope(year), NOW, tz=TZ, members=members),
            "one_team_year": lambda: compute_report(s, Scope(year, teams=("team3",)), NOW, tz=TZ, members=members),
            "all_reps_30_days": lambda: compute_report(s, Scope(month), NOW, tz=TZ, members=members),
            "overdue_now": lambda: overdue_now(s, NOW),
        }
        seconds = {name: round(timed(fn)[0], 3) for name, fn in cases.items()}
        report = cases["all_reps_year"]()
        seconds["render_table"] = round(timed(lambda: render_table(report, "en", TZ))[0], 4)
        if args.profile:
            profile(factory, lambda: cases["all_reps_year"]())
    result = {"assignments": args.assignments, "report_seconds": seconds, "build_seconds": round(build_s, 1),
              "database_mib": round(db.stat().st_size / 2**20, 1), "sqlite": sqlite3.sqlite_version,
              "python": platform.python_version(), "nproc": os.cpu_count(),
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()],
              "check_total": report.total, "run_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
