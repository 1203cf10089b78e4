"""Digest timing follows the team's business calendar (issue 15 item 5): no daily digest on a
day off, and the first one after it covers the days off as well."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.reports.schedule import parse_schedule, period_of, queue_due_digests
from mailrouter.store import DigestSentRow
from tests.test_reports_fixture import make_db, report_config

CONFIG = report_config()
DAILY = parse_schedule("daily", "08:30")
TZ = CONFIG.timezone


def at(day: int, month: int = 12) -> datetime:
    return datetime(2026, month, day, 8, 30, tzinfo=TZ)


def queued(sessions: sessionmaker[Session], now: datetime) -> int:
    factory, _ = make_db(sessions)
    with factory.begin() as session:
        queue_due_digests(session, CONFIG, now)
    with factory() as session:
        return session.scalar(select(func.count()).select_from(DigestSentRow))


def test_no_daily_digest_on_a_weekend(sessions: sessionmaker[Session]) -> None:
    # Saturday 5 December 2026 (Asia/Shanghai): the teams do not work
    assert queued(sessions, at(5) + timedelta(minutes=1)) == 0


def test_a_working_day_gets_its_digest(sessions: sessionmaker[Session]) -> None:
    assert queued(sessions, at(4) + timedelta(minutes=1)) == 2  # Friday: wang and boss


def test_mondays_digest_covers_the_weekend() -> None:
    calendar = CONFIG.sla.calendar_for("europe")
    assert period_of(DAILY, at(7), calendar).since == at(4)  # Monday's starts on Friday
    assert period_of(DAILY, at(8), calendar).since == at(7)
    assert period_of(parse_schedule("weekly", "mon 08:30"), at(7), calendar).since == at(30, 11)
