"""`mailrouter status` on a real SQLite database with rows as the daemon writes them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.config.load import Config, load_config
from mailrouter.commands.status import format_age, format_status, status_summary
from mailrouter.store import DECIDED, FILED, SENT, AssignmentRow, MessageRow, OutboxRow

ROOT = Path(__file__).resolve().parent.parent
# 10:00 in Shanghai (the example config's timezone) is 02:00 UTC: "today" began at 16:00 UTC.
NOW = datetime(2026, 11, 2, 2, 0, tzinfo=timezone.utc)
ENV = {"MAILROUTER_SALES_PASSWORD": "x", "MAILROUTER_INFO_PASSWORD": "x", "MAILROUTER_SMTP_PASSWORD": "x"}


@pytest.fixture
def config() -> Config:
    return load_config(ROOT / "config.toml", environ=ENV)


def message(session: Session, mailbox: str, uid: int, ago: timedelta, outcome: str = "routed",
            state: str = FILED) -> MessageRow:
    row = MessageRow(mailbox=mailbox, uidvalidity=1, uid=uid, raw_sha256=f"{uid:064}",
                     content_key=f"{uid:064}", state=state, outcome=outcome, folder="F",
                     message_id=f"<m{uid}@x>", received_at=NOW - ago, decided_at=NOW - ago)
    session.add(row)
    session.flush()
    return row


def fill(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        message(s, "sales", 1, timedelta(hours=12))  # yesterday, local time
        message(s, "sales", 2, timedelta(hours=9))
        message(s, "sales", 3, timedelta(hours=2), "ignored")
        queued = message(s, "sales", 4, timedelta(minutes=30), state=DECIDED)
        message(s, "sales", 5, timedelta(minutes=5), "unrecognized", state=DECIDED)
        sent = message(s, "sales", 6, timedelta(minutes=3), state=SENT)
        s.add(OutboxRow(mailbox="sales", message=queued.id, sender="sales@x", recipient="zhang@x", attempts=2,
                        next_attempt_at=NOW, deadline=NOW + timedelta(days=1)))
        s.add(OutboxRow(mailbox="sales", message=sent.id, sender="sales@x", recipient="li@x", status="sent",
                        next_attempt_at=NOW, deadline=NOW + timedelta(days=1)))
        for row, due, replied in ((1, NOW - timedelta(hours=11), NOW - timedelta(hours=10)),
                                  (2, NOW - timedelta(hours=8), None),
                                  (6, NOW + timedelta(minutes=10), None)):
            s.add(AssignmentRow(message=row, rep="zhang", customer="c@x", assigned_at=NOW - timedelta(hours=1),
                                due_at=due, first_reply_at=replied))


def test_summary(sessions: sessionmaker[Session], config: Config) -> None:
    fill(sessions)
    summary = status_summary(sessions, config, NOW)
    sales, info = summary.mailboxes
    assert (sales.name, info.name) == ("sales", "info")
    assert sales.last is not None and sales.last.message_id == "<m6@x>"
    assert sales.today == {"ignored": 1, "routed": 3, "unrecognized": 1}
    assert sales.unfiled == 3 and sales.oldest_unfiled_age == timedelta(minutes=30)
    assert info.last is None and info.today == {} and info.unfiled == 0
    assert summary.outbox_depth == 1 and summary.outbox_oldest_age == timedelta(minutes=30)
    assert summary.failing_outbox == 1
    assert (summary.open_assignments, summary.overdue_assignments) == (2, 1)


def test_format(sessions: sessionmaker[Session], config: Config) -> None:
    fill(sessions)
    text = format_status(status_summary(sessions, config, NOW))
    assert "mailbox sales:" in text
    assert "  last message   3m ago, routed <m6@x>" in text
    assert "  today          1 ignored, 3 routed, 1 unrecognized" in text
    assert "  not yet filed  3 (oldest 30m)" in text
    assert "outbox           1 waiting (oldest 30m), 1 being retried" in text
    assert "assignments      2 awaiting a first reply, 1 overdue" in text
    assert "  last message   none yet" in text


def test_empty_database(sessions: sessionmaker[Session], config: Config) -> None:
    summary = status_summary(sessions, config, NOW)
    assert summary.outbox_depth == 0 and summary.outbox_oldest_age is None
    assert "outbox           0 waiting\n" in format_status(summary)


def test_removed_mailbox_still_shown(sessions: sessionmaker[Session], config: Config) -> None:
    with sessions.begin() as s:
        message(s, "old-info", 1, timedelta(days=3))
    names = [m.name for m in status_summary(sessions, config, NOW).mailboxes]
    assert names == ["sales", "info", "old-info"]


@pytest.mark.parametrize("seconds, text", [(59, "59s"), (600, "10m"), (3 * 3600 + 120, "3h02m"), (3 * 86400, "3d")])
def test_format_age(seconds: int, text: str) -> None:
    assert format_age(timedelta(seconds=seconds)) == text


def test_status_speaks_the_configured_time_zone_and_counts_the_reports_backlog(
        sessions: sessionmaker[Session], config: Config) -> None:
    fill(sessions)
    text = format_status(status_summary(sessions, config, NOW))
    assert text.splitlines()[0] == "mailrouter status at 2026-11-02 10:00:00 CST"  # Asia/Shanghai, not UTC
    assert "backlog          1 waiting for a person, as the report counts them (oldest 5m)" in text


def test_status_in_chinese(sessions: sessionmaker[Session], config: Config) -> None:
    fill(sessions)
    text = format_status(status_summary(sessions, config, NOW), "zh")
    assert text.splitlines()[0] == "mailrouter 状态（2026-11-02 10:00:00 CST）"
    assert "  今天           1 已忽略, 3 已分配, 1 未识别" in text
    assert "分配             2 个等待首次回复，1 个已超时" in text
    assert "待人处理         1（与报表口径相同）（最早 5m）" in text


def test_status_shows_ladder_steps_skipped_after_downtime(sessions: sessionmaker[Session], config: Config) -> None:
    from mailrouter.store import SlaStepRow

    fill(sessions)
    with sessions.begin() as s:
        for step, detail in (("remind@5m", "skipped: reassign@30m was due as well"),
                             ("escalate@15m", "skipped: reassign@30m was due as well"),
                             ("reassign@30m", "reassigned from zhang to li")):
            s.add(SlaStepRow(assignment=2, step=step, kind=step.partition("@")[0], due_at=NOW, done_at=NOW,
                             detail=detail))
    assert "ladder today     1 step(s) taken, 2 skipped after downtime" in format_status(
        status_summary(sessions, config, NOW))
    assert "今日升级步骤     执行 1 步，停机后跳过 2 步" in format_status(status_summary(sessions, config, NOW), "zh")


def test_status_shows_which_instance_works_each_mailbox(sessions: sessionmaker[Session], config: Config) -> None:
    """Issue 17 item 2: with several instances on one database, who holds each mailbox's lease."""
    from mailrouter.store import LeaseRow

    with sessions.begin() as s:
        s.add(LeaseRow(name="mailbox sales", holder="mr-a:4242", acquired_at=NOW - timedelta(hours=2),
                       renewed_at=NOW - timedelta(seconds=7)))
    summary = status_summary(sessions, config, NOW)
    sales, info = summary.mailboxes
    assert sales.worked_by is not None and sales.worked_by.holder == "mr-a:4242"
    assert sales.worked_by.seen_age == timedelta(seconds=7) and info.worked_by is None
    text = format_status(summary)
    worked = next(line for line in text.splitlines() if line.startswith("  worked by"))
    since = (NOW - timedelta(hours=2)).astimezone(config.timezone)
    assert worked.split(None, 2)[2] == f"mr-a:4242 since {since:%Y-%m-%d %H:%M} (last seen 7s ago)"
    assert "处理实例" in format_status(summary, "zh") and "mr-a:4242" in format_status(summary, "zh")
