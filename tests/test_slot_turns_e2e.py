"""More mailboxes than daemon.max_connections_per_server: they take turns for the sessions,
and a mailbox without one is polled. Two mailboxes on one slot, in-process on the test bed,
with the poll interval and MAX_WAIT an hour, so every turn is one the loop asked for.

Before: a mailbox that handed its slot on queued again at once, so the mailboxes logged in
and out without pause (50 mailboxes on 8 slots: half a core), and a sweep asked of a mailbox
taking turns never ran: each turn ended before the point where the sweep is done."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailrouter.config.load import load_config
from mailrouter.runtime import mailbox as mailbox_loop
from mailrouter.runtime.daemon import Daemon
from mailrouter.store import FILED, MessageRow
from mailrouter.testing.samples import bulk_samples
from mailrouter.testing.testbed import TestBed
from tests.mailcheck import count_rows, wait_for
from tests.test_idle_wake_e2e import quiet_config

pytestmark = pytest.mark.integration

BOUND = 60.0  # only there so a broken test fails


@pytest.fixture
def daemon(bed: TestBed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    monkeypatch.setattr(mailbox_loop, "MAX_WAIT", 3600.0)
    running = Daemon(load_config(quiet_config(bed, tmp_path, max_connections_per_server=1)))
    assert len(running.workers) == 2
    running.start()
    try:
        for worker in running.workers:
            wait_for(lambda w=worker: w.rounds >= 1, f"{worker.mailbox.name}'s first turn", BOUND)
        yield running
    finally:
        running.stop()


def _settled(daemon: Daemon) -> bool:
    """Both waiting on purpose (one in IDLE, one for its turn), with no sweep asked (the
    scheduler asks for one at start)."""
    return all(w.lane.stuck_for() == 0.0 and not w.sweep_due.is_set() for w in daemon.workers)


def test_a_mailbox_that_handed_its_slot_on_takes_no_turn_before_its_round_is_due(daemon: Daemon) -> None:
    wait_for(lambda: _settled(daemon), "both mailboxes waiting", BOUND)
    rounds = sum(w.rounds for w in daemon.workers)
    time.sleep(5)  # before: 224 rounds here, each turn a login, a round and a logout
    # a slower machine only takes fewer turns; 2 leaves room for one turn a late ring asked for
    assert sum(w.rounds for w in daemon.workers) - rounds <= 2


def test_a_sweep_asked_of_mailboxes_taking_turns_runs_in_their_next_turn(daemon: Daemon) -> None:
    for worker in daemon.workers:
        worker.request_sweep()
    for worker in daemon.workers:
        wait_for(lambda w=worker: not w.sweep_due.is_set(), f"{worker.mailbox.name}'s sweep to run", BOUND)


def test_mail_for_a_mailbox_waiting_for_its_turn_is_routed_when_a_reload_rings_it(daemon: Daemon, bed: TestBed) -> None:
    """Its turn comes when its round is due, or at once for what cannot wait: a reload here.
    (One mailbox holds the slot in IDLE and hears of its mail; the other waits for its turn.)"""
    routed = [s for s in bulk_samples(12) if s.outcome == "routed"]
    for worker, sample in zip(daemon.workers, routed):
        bed.deliver(worker.mailbox.address, sample.raw, mail_from=sample.envelope_from)
    assert daemon.reload(daemon.config.path)
    wait_for(lambda: count_rows(daemon.config, MessageRow.state == FILED) >= 2, "both new messages filed", BOUND)
