"""Issue 17, idle CPU: a mailbox loop waits as long as nothing is due, and whatever needs it
sooner (a stop, a sweep request, a reload) rings its waker. The daemon runs in-process on the
test bed (Dovecot + SMTP, IDLE), with the poll interval and MAX_WAIT an hour, so only a ring
can end a wait within the tests' 60 s bounds."""
from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import event, select

from mailrouter.act.outgoing import queue_notice
from mailrouter.commands.demo import write_testbed_config
from mailrouter.config.load import load_config
from mailrouter.runtime import mailbox as mailbox_loop
from mailrouter.runtime.daemon import Daemon
from mailrouter.runtime.mailbox import MailboxWorker
from mailrouter.store import OutboxRow
from mailrouter.testing.testbed import TestBed
from tests.mailcheck import ROOT, wait_for

pytestmark = pytest.mark.integration

BOUND = 60.0  # generous: a ring answers in milliseconds; only there so a broken test fails


def quiet_config(bed: TestBed, workdir: Path, **daemon: object) -> Path:
    """The bed's config with no timed round or sweep: every wake in a test is one it caused."""
    path = write_testbed_config(ROOT / "config.toml", bed, workdir, **daemon)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for mailbox in data["mailbox"]:
        mailbox["poll_interval"] = 3600  # no safety-net round during a test
    data.setdefault("sla", {})["sweep_interval"] = 3600  # the tests ask for sweeps themselves
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def daemon(bed: TestBed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    monkeypatch.setattr(mailbox_loop, "MAX_WAIT", 3600.0)
    running = Daemon(load_config(quiet_config(bed, tmp_path)))
    running.start()
    try:
        for worker in running.workers:
            wait_for(lambda w=worker: _waiting(w), f"{worker.mailbox.name} idle after its first round", BOUND)
        yield running
    finally:
        running.stop()


def _waiting(worker: MailboxWorker) -> bool:
    """In its wait (the watchdog's view: waiting on purpose) after at least one round."""
    return worker.rounds >= 1 and worker.lane.stuck_for() == 0.0


def test_stop_ends_long_idle_waits_at_once(daemon: Daemon) -> None:
    daemon.stop_event.set()  # as the SIGTERM handler does
    for thread in daemon._threads:
        thread.join(BOUND)
    assert not [t.name for t in daemon._threads if t.is_alive()], "a mailbox loop slept through the stop"


def test_a_sweep_request_ends_the_wait(daemon: Daemon) -> None:
    worker = daemon.workers[0]
    rounds = worker.rounds
    worker.request_sweep()
    wait_for(lambda: not worker.sweep_due.is_set(), "the sweep to run", BOUND)
    assert worker.rounds == rounds  # a sweep that took no step starts no round


def test_a_reload_is_taken_at_once(daemon: Daemon) -> None:
    assert daemon.reload(daemon.config.path)
    for worker in daemon.workers:
        wait_for(lambda w=worker: w.config is daemon.config, f"{worker.mailbox.name} to take the reload", BOUND)


def test_an_idle_wake_queries_the_outbox_at_most_once(daemon: Daemon) -> None:
    worker = daemon.workers[0]
    engine = daemon.sessions.kw["bind"]
    queries: list[str] = []

    def count(_conn, _cursor, statement: str, *_rest) -> None:
        if "FROM outbox" in statement and "next_attempt_at" in statement:
            queries.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        wakes, rounds = worker.wakes, worker.rounds
        for _ in range(5):
            before = worker.wakes
            worker.waker.poke()  # a wake with nothing to do
            wait_for(lambda: worker.wakes > before and _waiting(worker), "the wake to end", BOUND)
        woken = worker.wakes - wakes
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert worker.rounds == rounds, "an idle wake started a round"
    assert woken >= 5
    assert 1 <= len(queries) <= woken


def test_a_notice_queued_by_another_process_is_sent_within_max_wait(
        daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody in the daemon rings for a row another process (a CLI command) writes: MAX_WAIT
    bounds it. Shortened here, so the row is due long before the hour-long waits end."""
    monkeypatch.setattr(mailbox_loop, "MAX_WAIT", 1.0)
    for worker in daemon.workers:  # the waits begun under an hour's MAX_WAIT end, as a stop would end them
        worker.waker.poke()
    config, now = daemon.config, daemon.clock()
    rep = next(iter(config.reps.values()))
    with daemon.sessions.begin() as session:  # as `mailrouter` commands write: no ring
        queue_notice(session, config, rep.email, "Queued elsewhere", "body", "<elsewhere.1@example.com>",
                     now - timedelta(seconds=1))

    def sent() -> bool:
        with daemon.sessions() as session:
            return session.scalar(select(OutboxRow.status).where(
                OutboxRow.kind == "notice", OutboxRow.recipient == rep.email)) == "sent"

    wait_for(sent, "the notice queued elsewhere to be sent", BOUND)
