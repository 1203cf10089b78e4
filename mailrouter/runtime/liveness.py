"""Is every mailbox loop getting on? The systemd watchdog is pinged only if so (issue 13).

A loop is alive while it makes progress (a step done: a batch fetched, recorded, filed...) or
waits on purpose (IDLE, the poll interval, a reconnect backoff). A loop that has sat in one
step longer than the limit is wedged (a parser, a server or a hook that never answers):
the daemon then stops pinging, and systemd restarts it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping


class Lane:
    """One loop's last sign of life; written by its own thread, read by the main loop (plain
    attribute writes: a stale read costs one tick, never a wrong verdict for long)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._since = clock()
        self._waiting = False

    def beat(self) -> None:
        """A step is done (or one starts after a wait)."""
        self._since = self._clock()
        self._waiting = False

    def idle(self) -> None:
        """Waiting on purpose from now until the next beat."""
        self._waiting = True

    def stuck_for(self) -> float:
        """Seconds in the current step; 0 while waiting on purpose."""
        return 0.0 if self._waiting else self._clock() - self._since


def stuck_lanes(lanes: Mapping[str, Lane], limit: float) -> dict[str, float]:
    """The lanes in one step for longer than `limit` seconds, with how long."""
    return {name: stuck for name, lane in lanes.items() if (stuck := lane.stuck_for()) > limit}
