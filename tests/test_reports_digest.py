"""Overdue list, supervisor digest and the report/overdue commands on the fixture database."""
from __future__ import annotations

import argparse
import csv
import io
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.reports.cli import add_report_parsers, cmd_overdue, cmd_report, parse_when
from mailrouter.reports.digest import digest_for_supervisor
from mailrouter.reports.overdue import overdue_now
from tests.test_reports_fixture import (HOSTILE_CUSTOMER, HOSTILE_NAME, NOW, PERIOD, make_db,
                                        report_config)

CONFIG = report_config()


def test_overdue_oldest_first_with_last_step(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    factory, ids = make_db(sessions)
    with factory() as session:
        items = overdue_now(session, NOW)
        only_chen = overdue_now(session, NOW, reps=["chen"])
    assert [o.assignment for o in items] == [ids["l0"], ids["z7"]]  # l11 is not due yet
    z7 = items[1]
    assert (z7.rep, z7.customer, z7.last_step) == ("zhang", HOSTILE_CUSTOMER, "escalate@15m")
    assert z7.age_seconds == (NOW - datetime(2026, 11, 5, 3, tzinfo=timezone.utc)).total_seconds()
    assert items[0].last_step is None and only_chen == []


def test_digest_has_only_the_supervisors_team(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    factory, _ = make_db(sessions)
    with factory() as session:
        subject, text, html = digest_for_supervisor(session, CONFIG, "wang", PERIOD, NOW)
    assert subject == "[mailrouter] europe：分配18封，超时2封（2026-11-02 – 2026-11-09）"
    for part in (text, html):
        assert "张伟" in part and "Li Na" in part and "escalate@15m" in part
        assert "americas" not in part and "陈" not in part  # chen is in the other team
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img" not in html


def test_digest_in_english_escapes_hostile_rep(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    factory, _ = make_db(sessions)
    with factory() as session:
        subject, text, html = digest_for_supervisor(session, CONFIG, "boss", PERIOD, NOW)
        with pytest.raises(ValueError):
            digest_for_supervisor(session, CONFIG, "li", PERIOD, NOW)
    assert subject.startswith("[mailrouter] americas: 3 assigned, 0 overdue")
    assert "Nothing is overdue." in text and "europe" not in text
    assert HOSTILE_NAME in text and "<script" not in html


def test_parse_when_uses_the_config_time_zone() -> None:
    tz = CONFIG.timezone
    assert parse_when("2026-11-01", tz, NOW) == datetime(2026, 10, 31, 16, tzinfo=timezone.utc)
    assert parse_when("7d", tz, NOW) == datetime(2026, 11, 2, 12, tzinfo=timezone.utc)
    assert parse_when("2026-11-01T08:30", tz, NOW) == datetime(2026, 11, 1, 0, 30, tzinfo=timezone.utc)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_when("last tuesday", tz, NOW)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("-c", "--config")
    add_report_parsers(parser.add_subparsers())
    return parser.parse_args(argv)


def test_report_command_writes_csv(database_url: str, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    make_db(sessions)
    config = replace(CONFIG, database=database_url)
    out = tmp_path / "r.csv"
    args = parse(["report", "--since", "2026-11-02T08:00", "--until", "2026-11-09T08:00",
                  "--team", "europe", "--format", "csv", "--output", str(out)])
    assert cmd_report(args, config, now=NOW) == 0
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [r[1] for r in rows if r and r[0] == "By rep"] == ["Li Na", "张伟"]
    assert cmd_report(parse(["report", "--rep", "nobody"]), config, now=NOW) == 2


def test_overdue_command(database_url: str, sessions: sessionmaker[Session],
                         capsys: pytest.CaptureFixture[str]) -> None:
    make_db(sessions)
    config = replace(CONFIG, database=database_url)
    assert cmd_overdue(parse(["overdue", "--team", "europe"]), config, now=NOW) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("Li Na") and out[3].startswith("张伟")


def test_digest_mail_suppresses_auto_replies_like_every_notice(sessions: sessionmaker[Session]) -> None:
    """Exchange answers a digest with an out-of-office unless told not to; notices already say so."""
    from email import message_from_bytes

    from mailrouter.store import OutboxRow
    from mailrouter.reports.schedule import _queue, parse_schedule
    factory, _ = make_db(sessions)
    with factory() as session:
        _queue(session, CONFIG, "wang", parse_schedule("daily", "08:00"), NOW, NOW)
        session.flush()
        payload = session.query(OutboxRow).filter_by(kind="notice").one().payload
    sent = message_from_bytes(payload)
    assert sent["Auto-Submitted"] == "auto-generated"
    assert sent["X-Auto-Response-Suppress"] == "All"
