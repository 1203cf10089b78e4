"""The waker and the wait's length (intake/wake.py, runtime/mailbox.wait_timeout): no servers."""
from __future__ import annotations

import threading

from mailrouter.intake.wake import StopEvent, Waker
from mailrouter.runtime import mailbox as mailbox_loop
from mailrouter.runtime.mailbox import wait_timeout


def test_a_ring_is_kept_until_answered_and_answered_once() -> None:
    waker = Waker()
    assert waker.clear() is False
    for _ in range(3):  # rung several times before the wait: one answer
        waker.poke()
    assert waker.wait(3600) is True  # rung before the wait began: returns at once
    assert waker.wait(0) is False


def test_a_ring_from_another_thread_ends_a_wait() -> None:
    waker = Waker()
    threading.Timer(0.05, waker.poke).start()
    assert waker.wait(60) is True


def test_a_full_pipe_never_blocks_the_ringer() -> None:
    waker = Waker()
    for _ in range(100_000):  # far beyond a pipe's buffer
        waker.poke()
    assert waker.clear() is True


def test_setting_the_stop_event_rings_every_attached_waker() -> None:
    stop, wakers = StopEvent(), [Waker(), Waker()]
    for waker in wakers:
        stop.on_set(waker.poke)
    stop.set()
    assert stop.is_set()
    assert [waker.clear() for waker in wakers] == [True, True]


def test_the_wait_lasts_until_the_next_thing_due_at_most_max_wait() -> None:
    assert wait_timeout(until_round=3600, outbox_due=None) == mailbox_loop.MAX_WAIT
    assert wait_timeout(until_round=12.5, outbox_due=None) == 12.5
    assert wait_timeout(until_round=3600, outbox_due=4.0) == 4.0
    assert wait_timeout(until_round=-1.0, outbox_due=4.0) == 0.0  # a round overdue: no wait
    assert wait_timeout(until_round=3600, outbox_due=-2.0) == 0.0  # a row overdue: no wait
