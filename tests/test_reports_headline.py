"""Issue 15 item 4, test (d): backlog, headline figures and previous-period deltas against a
hand-computed fixture (both databases, through the `sessions` fixture).

This period P = [11-09, 11-16) UTC, the previous one [11-02, 11-09); now = 11-16 00:00 (P's
end). Every assignment is due 15 min (900 s) after it was given. Business/wall seconds:

  this period                                   previous period
  a1  zhang 11-09 01:00 replied 60        met    b1 zhang 11-02 01:00 replied 120      met
  a2  zhang 11-09 02:00 replied 300       met    b2 zhang 11-03 01:00 replied 600      met
  a3  li    11-10 01:00 replied 600/1200  late   b3 li    11-04 01:00 replied 1800     late
  a4  li    11-10 02:00 replied 1200      late   b4 li    11-05 01:00 replied 2400     late
  a5  li    11-11 01:00 pooled 01:30      late   b5 zhang 11-08 20:00 replied 11-09 02:00
  a6  zhang 11-12 01:00 open, past due    late            (business 3600)             late
  a7  li    11-15 23:50 open, due 00:05   -      b6 li    11-06 01:00 pooled 01:30      late
  a8  zhang 11-13 01:00 undeliverable     late      -> a12 zhang (manual) 11-10 09:00
  a9  zhang 11-14 01:00 reassigned 01:30  late         replied 30                     met
  a10 li    11-14 01:30 replied 100       met
  a11 li    11-11 03:00 pooled 03:30, then filed as not an inquiry (outcome ignored)  late
Unrecognized, never assigned: u4 received 11-08 12:00, u1 received 11-15 10:00.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.commands.status import format_status, status_summary
from mailrouter.config.load import load_config
from mailrouter.reports.backlog import backlog
from mailrouter.reports.digest import digest_for_supervisor
from mailrouter.reports.figures import Period, Scope, compute_report
from mailrouter.reports.headline import headlines
from mailrouter.store import AssignmentRow, MessageRow
from tests.test_reports_fixture import report_config

UTC = timezone.utc
SINCE, UNTIL = datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)
NOW = UNTIL
DUE = timedelta(minutes=15)


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


# key: (message, rep, assigned, business, wall, ended, end_reason, how)
ASSIGNMENTS = {
    "a1": ("m1", "zhang", t(9, 1), 60, 60, None, None, "rule"),
    "a2": ("m2", "zhang", t(9, 2), 300, 300, None, None, "rule"),
    "a3": ("m3", "li", t(10, 1), 600, 1200, None, None, "rule"),
    "a4": ("m4", "li", t(10, 2), 1200, 1200, None, None, "rule"),
    "a5": ("m5", "li", t(11, 1), None, None, t(11, 1, 30), "pooled", "rule"),
    "a6": ("m6", "zhang", t(12, 1), None, None, None, None, "rule"),
    "a7": ("m7", "li", t(15, 23, 50), None, None, None, None, "rule"),
    "a8": ("m8", "zhang", t(13, 1), None, None, t(13, 1, 1), "undeliverable", "rule"),
    "a9": ("m9", "zhang", t(14, 1), None, None, t(14, 1, 30), "reassigned", "rule"),
    "a10": ("m9", "li", t(14, 1, 30), 100, 100, None, None, "reassign"),
    "a11": ("m11", "li", t(11, 3), None, None, t(11, 3, 30), "pooled", "rule"),
    "b1": ("n1", "zhang", t(2, 1), 120, 120, None, None, "rule"),
    "b2": ("n2", "zhang", t(3, 1), 600, 600, None, None, "rule"),
    "b3": ("n3", "li", t(4, 1), 1800, 1800, None, None, "rule"),
    "b4": ("n4", "li", t(5, 1), 2400, 2400, None, None, "rule"),
    "b5": ("n5", "zhang", t(8, 20), 3600, 6 * 3600, None, None, "rule"),
    "b6": ("n6", "li", t(6, 1), None, None, t(6, 1, 30), "pooled", "rule"),
    "a12": ("n6", "zhang", t(10, 9), 30, 30, None, None, "manual"),
}
# message: (outcome today, received)
MESSAGES = {key: ("routed", None) for key, *_ in ASSIGNMENTS.values()}
MESSAGES.update({"m8": ("undeliverable", None), "m11": ("ignored", None),
                 "u1": ("unrecognized", t(15, 10)), "u4": ("unrecognized", t(8, 12))})


def populate(session: Session) -> None:
    first = {}
    for message, _, at, *_ in ASSIGNMENTS.values():
        first[message] = min(first.get(message, at), at)
    ids = {}
    for n, (key, (outcome, received)) in enumerate(MESSAGES.items(), start=1):
        row = MessageRow(mailbox="sales", uidvalidity=1, uid=n, raw_sha256=f"{n:064x}",
                         content_key=f"{n:064x}", state="filed", outcome=outcome, folder="X",
                         sender=f"buyer{n}@example.com", subject=f"Inquiry {key}",
                         received_at=received or first[key], decided_at=received or first[key])
        session.add(row)
        session.flush()
        ids[key] = row.id
    for message, rep, at, business, wall, ended, reason, how in ASSIGNMENTS.values():
        session.add(AssignmentRow(
            message=ids[message], rep=rep, team="europe", customer="b@example.com", assigned_at=at,
            how=how, due_at=at + DUE, reply_business_seconds=business, reply_seconds=wall,
            first_reply_at=None if wall is None else at + timedelta(seconds=wall),
            ended_at=ended, end_reason=reason))
    session.commit()


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions() as session:
        populate(session)
    return sessions


def test_backlog_counts_pooled_undeliverable_and_unrecognized(db: sessionmaker[Session]) -> None:
    with db() as session:
        now, before = backlog(session, NOW), backlog(session, SINCE)
    # now: m5 (pooled, routed) + m8 (undeliverable) + u1 + u4 (unrecognized) = 4; not m11
    # (pooled, then filed as ignored), not n6 (pooled, then answered by a12), not m9 (a10 replied)
    assert now.count == 4
    # the oldest is u4, 11-08 12:00: 7 days 12 h before now = 7 * 86400 + 12 * 3600 = 648000 s
    assert now.oldest_age_seconds == 648000
    # at 11-09 00:00: u4 + n6 (pooled 11-06, a12 only given on 11-10) = 2
    assert before.count == 2


def test_headline_figures_and_deltas(db: sessionmaker[Session]) -> None:
    with db() as session:
        h = headlines(session, SINCE, UNTIL, NOW)
    cur, prev = h.current, h.previous
    assert (prev.since, prev.until) == (datetime(2026, 11, 2, tzinfo=UTC), SINCE)
    # this period, business times sorted: 30 60 100 300 600 1200 (n = 6)
    # median: rank ceil(0.5 * 6) = 3 -> 100; p90: rank ceil(0.9 * 6) = ceil(5.4) = 6 -> 1200
    assert (cur.median, cur.p90) == (100, 1200)
    # previous: 120 600 1800 2400 3600 (n = 5): median rank 3 -> 1800; p90 rank ceil(4.5) = 5 -> 3600
    assert (prev.median, prev.p90) == (1800, 3600)
    # within SLA, this period: met a1 a2 a10 a12 = 4; known: all but a7 (open, due after now) = 11
    assert cur.within_sla == pytest.approx(4 / 11)
    # previous: met b1 b2 = 2 of 6 (b5 replied after its due time, b6 pooled)
    assert prev.within_sla == pytest.approx(2 / 6)
    # open at now: a6, a7 = 2; open at 11-09 00:00: b5 (replied only at 02:00) = 1
    assert (cur.open, prev.open) == (2, 1)
    assert (cur.unassigned, prev.unassigned) == (4, 2)
    # deltas: 100 - 1800 = -1700; 1200 - 3600 = -2400; 4/11 - 2/6 = 12/33 - 11/33 = 1/33;
    # open 2 - 1 = 1; unassigned 4 - 2 = 2
    assert (h.delta("median"), h.delta("p90")) == (-1700, -2400)
    assert h.delta("within_sla") == pytest.approx(1 / 33)
    assert (h.delta("open"), h.delta("unassigned")) == (1, 2)


def test_report_carries_backlog_headlines_and_unanswered(db: sessionmaker[Session]) -> None:
    with db() as session:
        report = compute_report(session, Scope(Period(SINCE, UNTIL)), NOW)
    assert report.backlog.count == 4
    assert report.headlines is not None and report.headlines.current.median == 100
    # zhang: a1 a2 a6 a8 a9 a12 = 6 assigned, replied a1 a2 a12 = 3, so 3 unanswered;
    # business 30 60 300 -> median rank ceil(1.5) = 2 -> 60
    # li: a3 a4 a5 a7 a10 a11 = 6 assigned, replied a3 a4 a10 = 3; 100 600 1200 -> median 600
    by_rep = {g.key: (g.assigned, g.replied, g.unanswered, g.business.median) for g in report.by_rep}
    assert by_rep == {"zhang": (6, 3, 3, 60), "li": (6, 3, 3, 600)}
    # the list: unanswered longest-waiting first (a5 a11 a6 a8 a9 a7), then slowest replies
    # (a4 1200, a3 600, a2 300, a10 100) up to ten
    assert [s.subject for s in report.slowest] == [
        "Inquiry m5", "Inquiry m11", "Inquiry m6", "Inquiry m8", "Inquiry m9", "Inquiry m7",
        "Inquiry m4", "Inquiry m3", "Inquiry m2", "Inquiry m9"]


def test_status_shows_the_same_backlog(db: sessionmaker[Session]) -> None:
    env = {"MAILROUTER_SALES_PASSWORD": "x", "MAILROUTER_INFO_PASSWORD": "x", "MAILROUTER_SMTP_PASSWORD": "x"}
    config = load_config(Path(__file__).resolve().parent.parent / "config.toml", environ=env)
    summary = status_summary(db, config, NOW)
    # the 4 of test_backlog_counts_pooled_undeliverable_and_unrecognized, u4 oldest (7 days)
    assert summary.backlog.count == 4
    assert "backlog          4 waiting for a person, as the report counts them (oldest 7d)" in \
        format_status(summary).splitlines()


def test_digest_carries_the_same_headline_figures(db: sessionmaker[Session]) -> None:
    config = report_config()  # team europe, supervised by wang (zh)
    with db() as session:
        _, text, html = digest_for_supervisor(session, config, "wang", Period(SINCE, UNTIL), NOW)
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    # median 100 s = 1.7m, change 100 - 1800 = -1700 s = -28.3m, previous 1800 s = 30.0m
    assert lines["首次回复中位数"] == ["1.7m", "-28.3m", "30.0m"]
    # within SLA 4/11 = 36.4 %, previous 2/6 = 33.3 %: +1/33 = +3.0 points
    assert lines["按时回复率"] == ["36.4%", "+3.0", "个百分点", "33.3%"]
    assert lines["待人工处理"] == ["4", "+2", "2"]
    assert "首次回复P90" in html and "-40.0m" in html  # 1200 - 3600 = -2400 s
