"""A hand-computed set of assignments for the report tests (figures worked out in the tests).

Period: [2026-11-02, 2026-11-09) UTC; "now" is 2026-11-09 12:00 UTC. Every assignment is due
15 minutes after it was given. Reply times (wall / business seconds):

  zhang (europe): 60/60, 240/240, 600/300, 2000/1000, 4000/3700; z6 no reply, reassigned to
                  chen; z7 no reply, open, overdue (steps remind@5m then escalate@15m)
  li (europe):    30, 100, 200, 400, 500, 700, 800, 900, 1000 (wall = business), 5000/2000;
                  l11 no reply, open, due after "now"
  chen (americas, hostile display name): 120/120; c2 no reply, undeliverable;
                  c3 (reassigned from z6) 3000/3000
Outside the period: zhang replied 50 s on 2026-10-25; li l0 open since 2026-10-20 (overdue).
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session, sessionmaker

from mailrouter.config.load import Config, RepConfig, TeamConfig
from mailrouter.reports.figures import Period
from mailrouter.store import AssignmentRow, CollisionRow, MessageRow, SlaStepRow

from tests.factories import example_config

UTC = timezone.utc
SINCE = datetime(2026, 11, 2, tzinfo=UTC)
UNTIL = datetime(2026, 11, 9, tzinfo=UTC)
NOW = datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
PERIOD = Period(SINCE, UNTIL)
HOSTILE_NAME = "<script>alert('rep')</script>陈"
HOSTILE_CUSTOMER = '"<img src=x onerror=alert(1)>"@evil.example'
DUE = timedelta(minutes=15)

# (key, rep, team, assigned_at, wall, business, ended, end_reason, rule, country, language, products)
ROWS = [
    ("z1", "zhang", "europe", datetime(2026, 11, 2, 1, 0), 60, 60, None, None, "germany", "DE", "de", "valves pumps"),
    ("z2", "zhang", "europe", datetime(2026, 11, 2, 3, 0), 240, 240, None, None, "germany", "DE", "de", "valves"),
    ("z3", "zhang", "europe", datetime(2026, 11, 3, 1, 0), 600, 300, None, None, "germany", "DE", "de", ""),
    ("z4", "zhang", "europe", datetime(2026, 11, 4, 1, 0), 2000, 1000, None, None, "germany", "AT", "de", ""),
    ("z5", "zhang", "europe", datetime(2026, 11, 4, 2, 0), 4000, 3700, None, None, "germany", "DE", "en", ""),
    ("z6", "zhang", "europe", datetime(2026, 11, 5, 1, 0), None, None, "2026-11-05T02:00", "reassigned", "germany", "DE", "de", ""),
    ("z7", "zhang", "europe", datetime(2026, 11, 5, 3, 0), None, None, None, None, "germany", "DE", "de", ""),
    *[(f"l{i + 1}", "li", "europe", datetime(2026, 11, 6, 1, 0) + timedelta(hours=i), w, b, None, None,
       "europe", "FR", "fr", "") for i, (w, b) in enumerate(
        [(30, 30), (100, 100), (200, 200), (400, 400), (500, 500), (700, 700), (800, 800),
         (900, 900), (1000, 1000), (5000, 2000)])],
    ("l11", "li", "europe", datetime(2026, 11, 8, 23, 0), None, None, None, None, "europe", "FR", "fr", ""),
    ("c1", "chen", "americas", datetime(2026, 11, 7, 1, 0), 120, 120, None, None, "americas", "US", "en", "pipe_fittings"),
    ("c2", "chen", "americas", datetime(2026, 11, 7, 2, 0), None, None, "2026-11-07T02:01", "undeliverable", "americas", "US", "en", "pipexfittings"),
    ("c3", "chen", "americas", datetime(2026, 11, 5, 2, 0), 3000, 3000, None, None, "germany", "DE", "de", ""),
    ("old", "zhang", "europe", datetime(2026, 10, 25, 1, 0), 50, 50, None, None, "germany", "DE", "de", "valves"),
    ("l0", "li", "europe", datetime(2026, 10, 20, 1, 0), None, None, None, None, "europe", "FR", "fr", ""),
]


def report_config() -> Config:
    """Example config with the fixture's reps and teams; chen's name is hostile HTML."""
    base = example_config()
    reps = {
        "zhang": RepConfig("zhang", "张伟", "zhang@example.com", "zh", "zhang", True),
        "li": RepConfig("li", "Li Na", "li@example.com", "en", "li", True),
        "chen": RepConfig("chen", HOSTILE_NAME, "chen@example.com", "en", "chen", True),
        "wang": RepConfig("wang", "王经理", "wang@example.com", "zh", "wang", True),
        "boss": RepConfig("boss", "Boss", "boss@example.com", "en", "boss", True),
    }
    teams = {
        "europe": TeamConfig("europe", ("zhang", "li"), "round_robin", "wang"),
        "americas": TeamConfig("americas", ("chen", "wang"), "round_robin", "boss"),
    }
    return replace(base, reps=reps, teams=teams)


def _utc(t: datetime | str) -> datetime:
    t = datetime.fromisoformat(t) if isinstance(t, str) else t
    return t.replace(tzinfo=UTC)


def _message(session: Session, n: int, outcome: str, received: datetime, rule: str | None = None,
             country: str | None = None, language: str | None = None, products: str = "") -> MessageRow:
    row = MessageRow(mailbox="sales", uidvalidity=1, uid=n, raw_sha256=f"{n:064x}",
                     content_key=f"{n:064x}", state="filed", outcome=outcome, rule=rule,
                     folder="Routed", country=country, language=language, products=products,
                     received_at=received, decided_at=received)
    session.add(row)
    session.flush()
    return row


def populate(session: Session) -> dict[str, int]:
    """Insert the fixture; returns assignment ids by key."""
    ids: dict[str, int] = {}
    for n, (key, rep, team, at, wall, business, ended, reason, rule, country, language,
            products) in enumerate(ROWS, start=1):
        at = _utc(at)
        msg = _message(session, n, "routed", at, rule, country, language, products)
        customer = HOSTILE_CUSTOMER if key == "z7" else f"buyer{n}@{key}.example"
        row = AssignmentRow(
            message=msg.id, rep=rep, team=team, customer=customer, assigned_at=at,
            due_at=NOW + DUE if key == "l11" else at + DUE,  # l11: open but not yet due
            first_reply_at=None if wall is None else at + timedelta(seconds=wall),
            reply_seconds=wall, reply_business_seconds=business,
            ended_at=None if ended is None else _utc(ended), end_reason=reason,
            reassigned_from=ids.get("z6") if key == "c3" else None)
        session.add(row)
        session.flush()
        ids[key] = row.id
    _steps_collisions_backlog(session, ids)
    session.commit()
    return ids


def _steps_collisions_backlog(session: Session, ids: dict[str, int]) -> None:
    z7_at = _utc(datetime(2026, 11, 5, 3, 0))
    session.add_all([
        SlaStepRow(assignment=ids["z7"], step="remind@5m", kind="remind", due_at=z7_at + timedelta(minutes=5),
                   done_at=z7_at + timedelta(minutes=5)),
        SlaStepRow(assignment=ids["z7"], step="escalate@15m", kind="escalate",
                   due_at=z7_at + timedelta(minutes=15), done_at=z7_at + timedelta(minutes=16)),
        CollisionRow(customer="a@x.example", owner="li", rep="zhang", at=_utc(datetime(2026, 11, 3))),
        CollisionRow(customer="b@x.example", owner="li", rep="zhang", at=_utc(datetime(2026, 11, 4))),
        CollisionRow(customer="c@x.example", owner="zhang", rep="chen", at=_utc(datetime(2026, 11, 6))),
        CollisionRow(customer="d@x.example", owner="zhang", rep="chen", at=_utc(datetime(2026, 10, 1))),
    ])
    # Backlog: two unassigned Unrecognized (oldest 24 h before NOW), one already assigned.
    _message(session, 900, "unrecognized", _utc(datetime(2026, 11, 8, 12, 0)))
    _message(session, 901, "unrecognized", _utc(datetime(2026, 11, 9, 6, 0)))
    assigned = _message(session, 902, "unrecognized", _utc(datetime(2026, 11, 1)))
    session.add(AssignmentRow(message=assigned.id, rep="wang", team=None, customer="m@x.example",
                              assigned_at=_utc(datetime(2026, 11, 1)), how="manual",
                              first_reply_at=_utc(datetime(2026, 11, 1, 0, 1)), reply_seconds=60,
                              reply_business_seconds=60))


def make_db(factory: sessionmaker[Session]) -> tuple[sessionmaker[Session], dict[str, int]]:
    """Fill a fresh database (the `sessions` fixture: SQLite and PostgreSQL) with the fixture."""
    with factory() as session:
        ids = populate(session)
    return factory, ids
