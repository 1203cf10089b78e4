"""Issue 17: what is said, and written for `status`, when a mailbox or reply source cannot
connect (intake/health.py, runtime/connections.py, preflight.start_plan). Pure parts with an
injected clock; the end-to-end behaviour is in test_degraded_start_e2e.py."""
from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.commands.status import format_status, status_summary
from mailrouter.config.load import Config, load_config
from mailrouter.intake import imap
from mailrouter.intake.health import REFUSED, REFUSED_REMINDER, UNREACHABLE, Link, Outage
from mailrouter.runtime.connections import Board, status_line
from mailrouter.runtime.preflight import Finding, start_plan
from mailrouter.store import ConnectionProblemRow

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 2, 2, 0, tzinfo=timezone.utc)
ENV = {"MAILROUTER_SALES_PASSWORD": "x", "MAILROUTER_INFO_PASSWORD": "x", "MAILROUTER_SMTP_PASSWORD": "x"}
REFUSAL = imap.ImapAuthError("connect to imap.example.com:993: login refused: [AUTHENTICATIONFAILED]")
DEAD = imap.ImapConnectionLost("connect to imap.example.com:993: ConnectionRefusedError: [Errno 111]")


class Ticks:
    def __init__(self) -> None:
        self.wall, self.mono = NOW, 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


def link(ticks: Ticks, changes: list | None = None) -> Link:
    return Link("mailbox late", (lambda label, outage: changes.append((label, outage))) if changes is not None
                else (lambda label, outage: None), clock=lambda: ticks.wall, monotonic=lambda: ticks.mono)


def levels(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.levelname for r in caplog.records if r.name == "mailrouter.connection"]


def test_an_unreachable_server_is_said_once_at_start_then_retried_quietly(caplog):
    caplog.set_level(logging.DEBUG, logger="mailrouter.connection")
    ticks = Ticks()
    late = link(ticks)
    late.down_at_start(UNREACHABLE, str(DEAD), "from 1 s, doubling to every 5 min")
    for _ in range(20):  # twenty retries within the hour
        ticks.advance(120)
        late.failed(DEAD, 300)
    assert levels(caplog) == ["ERROR"] + ["DEBUG"] * 20
    assert "mailbox late: not connected at start" in caplog.records[0].getMessage()
    ticks.advance(1300)  # past the hour: one reminder
    late.failed(DEAD, 300)
    assert levels(caplog)[-1] == "WARNING" and "still not connected for 1h" in caplog.records[-1].getMessage()


def test_a_refused_login_is_an_error_again_every_reminder_period_not_every_retry(caplog):
    caplog.set_level(logging.DEBUG, logger="mailrouter.connection")
    ticks = Ticks()
    late = link(ticks)
    late.down_at_start(REFUSED, str(REFUSAL), "every 1 to 10 min")
    for _ in range(3):  # 1, 2, 4 min: within the reminder period
        ticks.advance(60)
        late.failed(REFUSAL, 60)
    ticks.advance(REFUSED_REMINDER)
    late.failed(REFUSAL, 600)
    ticks.advance(60)
    late.failed(REFUSAL, 600)
    assert levels(caplog) == ["ERROR", "DEBUG", "DEBUG", "DEBUG", "ERROR", "DEBUG"]
    assert "login still refused" in caplog.records[4].getMessage()


def test_a_change_of_cause_is_said_at_once(caplog):
    caplog.set_level(logging.DEBUG, logger="mailrouter.connection")
    ticks = Ticks()
    late = link(ticks)
    late.down_at_start(UNREACHABLE, str(DEAD), "soon")
    ticks.advance(5)
    late.failed(REFUSAL, 60)  # the server is back, and the password was changed meanwhile
    assert levels(caplog) == ["ERROR", "ERROR"]
    assert late.outage is not None and late.outage.kind == REFUSED and late.outage.since == NOW


def test_connecting_again_is_one_info_line_and_clears_the_outage(caplog):
    caplog.set_level(logging.DEBUG, logger="mailrouter.connection")
    ticks, changes = Ticks(), []
    late = link(ticks, changes)
    late.down_at_start(UNREACHABLE, str(DEAD), "soon")
    ticks.advance(185)
    late.connected()
    late.connected()  # a routine reconnect later says nothing
    assert levels(caplog) == ["ERROR", "INFO"]
    assert caplog.records[-1].getMessage().startswith("mailbox late: connected, after 3m05s not connected (")
    assert changes == [("mailbox late", None)] and late.outage is None


def test_a_start_outage_is_handed_on_once_when_serving_begins():
    changes: list = []
    late = link(Ticks(), changes)
    late.down_at_start(UNREACHABLE, str(DEAD), "soon")
    assert changes == []
    late.serving()
    late.serving()  # the lease lost and taken again: said already
    assert [(label, outage.kind) for label, outage in changes] == [("mailbox late", UNREACHABLE)]


def test_the_first_connect_clears_what_a_previous_run_left():
    changes: list = []
    link(Ticks(), changes).connected()
    assert changes == [("mailbox late", None)]


def test_a_connection_lost_while_running_is_a_warning_once(caplog):
    caplog.set_level(logging.DEBUG, logger="mailrouter.connection")
    ticks = Ticks()
    late = link(ticks)
    late.connected()
    late.failed(DEAD, 1)
    late.failed(DEAD, 2)
    ticks.advance(3)
    late.connected()  # back within seconds: a blip, whose end is no news
    late.failed(DEAD, 1)
    ticks.advance(300)
    late.connected()  # five minutes out: its end is
    assert levels(caplog) == ["WARNING", "DEBUG", "DEBUG", "WARNING", "INFO"]
    assert caplog.records[0].getMessage().startswith("mailbox late: not connected (connect to ")


class Recording(Link):
    """Records the backoffs keep_serving chooses instead of sleeping them."""

    def __init__(self, label: str, tries: int = 4) -> None:
        super().__init__(label)
        self.pauses: list[float] = []
        self.tries = tries

    def pause(self, stop: threading.Event, delay: float) -> None:
        self.pauses.append(delay)
        if len(self.pauses) >= self.tries:
            stop.set()


def test_keep_serving_waits_longer_after_a_refused_login_than_after_a_dead_server():
    """A wrong password retried every few seconds can lock the account or get our address
    banned for every mailbox on that server."""
    pauses = {}
    for name, error in (("refused", REFUSAL), ("dead", DEAD)):
        def serve(error=error):
            raise error
        recording = Recording(f"mailbox {name}")
        imap.keep_serving(name, serve, threading.Event(), link=recording)
        pauses[name] = recording.pauses
    assert pauses["dead"] == [1.0, 2.0, 4.0, 8.0]
    assert pauses["refused"] == [60.0, 120.0, 240.0, 480.0]


def test_after_a_refused_start_check_the_loop_does_not_try_again_at_once():
    late = Recording("mailbox late", tries=1)
    late.down_at_start(REFUSED, str(REFUSAL), "later")
    tries: list[int] = []
    imap.keep_serving("late", lambda: tries.append(1), threading.Event(), link=late)
    assert late.pauses == [60.0] and tries == []


def test_retry_soon_ends_a_backoff_and_stop_ends_it_at_once():
    late, stop = Link("mailbox late"), threading.Event()
    waiter = threading.Thread(target=late.pause, args=(stop, 600.0))
    waiter.start()
    late.retry_soon()
    waiter.join(60)
    assert not waiter.is_alive()
    waiter = threading.Thread(target=late.pause, args=(stop, 600.0))
    waiter.start()
    stop.set()
    waiter.join(60)
    assert not waiter.is_alive()


def finding(worker: str | None, error: str | None = "boom", kind: str = UNREACHABLE) -> Finding:
    return Finding(worker or "SMTP smtp.example.com:587", error, worker=worker, kind=kind)


def test_start_plan_starts_with_some_mailboxes_down():
    plan = start_plan([finding("mailbox sales", None), finding("mailbox info"), finding("reply source li"),
                       finding(None, None)], ["sales", "info"])
    assert plan.refusal is None
    assert [f.worker for f in plan.down] == ["mailbox info", "reply source li"]


@pytest.mark.parametrize("findings, why", [
    ([finding("mailbox sales"), finding("mailbox info", kind=REFUSED)], "no mailbox could connect (2 tried)"),
    ([finding("mailbox sales", None), finding(None)], "a need all mailboxes share failed"),
    ([finding("mailbox sales"), finding("mailbox info"), finding(None)],
     "a need all mailboxes share failed; no mailbox could connect (2 tried)"),
])
def test_start_plan_refuses_on_a_shared_need_or_when_no_mailbox_works(findings, why):
    plan = start_plan(findings, ["sales", "info"])
    assert plan.refusal == why and plan.failed == [f for f in findings if f.error]


def test_start_plan_reply_sources_alone_failing_never_refuse():
    plan = start_plan([finding("mailbox sales", None), finding("reply source li", kind=REFUSED)], ["sales"])
    assert plan.refusal is None and [f.worker for f in plan.down] == ["reply source li"]


@pytest.fixture
def config() -> Config:
    return load_config(ROOT / "config.toml", environ=ENV)


def test_the_board_writes_an_outage_for_status_and_removes_it_on_connect(sessions: sessionmaker[Session],
                                                                       config: Config):
    lines: list[str] = []
    board = Board(sessions, on_status=lines.append, clock=lambda: NOW - timedelta(minutes=30))
    board.link("mailbox info").down_at_start(REFUSED, "login refused: [AUTHENTICATIONFAILED]", "later")
    with sessions() as session:  # not yet: this instance may be a standby that never works it
        assert session.scalars(select(ConnectionProblemRow)).all() == []
    board.link("mailbox info").serving()  # keep_serving runs only while this instance holds the lease
    with sessions() as session:
        (row,) = session.scalars(select(ConnectionProblemRow)).all()
    assert (row.name, row.kind, row.since) == ("mailbox info", REFUSED, NOW - timedelta(minutes=30))
    assert lines[-1].startswith("not connected: mailbox info (since 01:30 UTC, login refused: login refused")

    summary = status_summary(sessions, config, NOW)
    _, info = summary.mailboxes
    assert info.not_connected is not None and info.not_connected.tried_age == timedelta(minutes=30)
    text = format_status(summary)
    section = text.split("mailbox info:")[1]
    since = (NOW - timedelta(minutes=30)).astimezone(config.timezone)
    assert (f"  connection     not connected since {since:%Y-%m-%d %H:%M}, login refused: "
            "login refused: [AUTHENTICATIONFAILED] (last tried 30m ago)") in section
    assert "not connected" not in text.split("mailbox info:")[0]  # sales is fine
    assert re.search(r"^  连接 +未连接，自 \S+ \S+ 起，登录被拒绝：login refused", format_status(summary, "zh"), re.M)

    board.link("mailbox info").connected()
    with sessions() as session:
        assert session.scalars(select(ConnectionProblemRow)).all() == []
    assert lines[-1] == "" and "not connected" not in format_status(status_summary(sessions, config, NOW))


def test_status_names_a_reply_source_that_is_not_connected(sessions: sessionmaker[Session], config: Config):
    from dataclasses import replace

    from mailrouter.config.schema import ReplySource

    source = ReplySource(name="rep_mailbox:li", kind="rep_mailbox", server=config.mailboxes[0].server, rep="li")
    config = replace(config, sla=replace(config.sla, reply_sources=(source,)))
    link = Board(sessions, clock=lambda: NOW).link("reply source rep_mailbox:li")
    link.down_at_start(UNREACHABLE, "connect to imap.example.com:993: timed out", "soon")
    link.serving()
    text = format_status(status_summary(sessions, config, NOW))
    assert "reply source rep_mailbox:li:\n  connection     not connected since" in text
    assert "unreachable: connect to imap.example.com:993: timed out" in text
    assert "回复来源 rep_mailbox:li：" in format_status(status_summary(sessions, config, NOW), "zh")


def test_status_line_is_one_line_and_bounded():
    outage = Outage(UNREACHABLE, "x" * 500 + "\nsecond line", NOW, NOW)
    line = status_line({"mailbox a": outage, "mailbox b": outage})
    assert line.startswith("not connected: mailbox a (since 02:00 UTC, unreachable: xxx")
    assert len(line) < 400 and line.count("mailbox ") == 2


def _login(worker: str | None, answer: threading.Event | None = None, error: str | None = None):
    from mailrouter.runtime.preflight import _Login

    def attempt():
        if answer is not None:
            answer.wait(60)
        return error, [], UNREACHABLE
    return _Login(worker or "SMTP", worker, attempt)


def test_a_silent_mailbox_is_left_behind_once_another_is_in():
    from mailrouter.runtime.preflight import LABELS, _all_at_once

    silent = threading.Event()
    try:
        found = _all_at_once([_login("mailbox late", silent), _login("mailbox sales"), _login(None)], 0.2,
                             LABELS["en"])
    finally:
        silent.set()
    assert [(f.worker, f.error) for f in found] == [
        ("mailbox late", "no answer within 0 s (a firewall dropping packets, or a server that hangs)"),
        ("mailbox sales", None), (None, None)]


def test_with_no_mailbox_in_the_start_waits_for_the_real_answers():
    """Else a slow network at boot would be reported as 'no answer' instead of its cause."""
    from mailrouter.runtime.preflight import LABELS, _all_at_once

    slow = threading.Event()
    threading.Timer(1.0, slow.set).start()  # answers after the 0.2 s start wait
    found = _all_at_once([_login("mailbox sales", slow, "connection refused"), _login(None)], 0.2, LABELS["en"])
    assert [(f.worker, f.error) for f in found] == [("mailbox sales", "connection refused"), (None, None)]
