"""The watchdog's verdict on the mailbox loops, with a clock the test moves."""
from __future__ import annotations

from mailrouter.runtime.liveness import Lane, stuck_lanes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_lane_in_one_step_past_the_limit_is_stuck_and_a_beat_frees_it() -> None:
    clock = Clock()
    lane = Lane(clock)
    clock.now += 59
    assert stuck_lanes({"sales": lane}, 60) == {}
    clock.now += 2
    assert stuck_lanes({"sales": lane}, 60) == {"sales": 61}
    lane.beat()
    assert stuck_lanes({"sales": lane}, 60) == {}


def test_a_lane_waiting_on_purpose_is_never_stuck_however_long() -> None:
    clock = Clock()
    lane, busy = Lane(clock), Lane(clock)
    lane.idle()
    clock.now += 3600
    assert stuck_lanes({"info": lane, "sales": busy}, 60) == {"sales": 3600}
    lane.beat()  # the wait is over: the clock runs from here
    clock.now += 61
    assert lane.stuck_for() == 61
