"""A doorbell that ends a worker's wait at once: a stop, a reload, a sweep request or a session
waiting for a slot rings it, so the wait itself can last until the next thing due instead of
a short tick.

A pipe rather than an Event, so the IDLE wait can poll it together with the IMAP socket
(intake/imap.py); the polling wait polls it alone.
"""
from __future__ import annotations

import os
import select
import threading
import weakref
from collections.abc import Callable


class Waker:
    """Rung from any thread (or a signal handler); waited on by one worker. Its two file
    descriptors are closed when it is collected, never before: whoever may still ring it holds
    it, so a late ring can never write into a descriptor number reused meanwhile."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        weakref.finalize(self, _close_fds, self._read, self._write)

    def poke(self) -> None:
        """Ring: the current or next wait returns at once."""
        try:
            os.write(self._write, b"\0")
        except OSError:  # full (rung already, not yet answered) or closed (the worker ended)
            pass

    def fileno(self) -> int:
        return self._read

    def clear(self) -> bool:
        """Answer every ring so far; True if there was one."""
        rung = False
        while True:
            try:
                data = os.read(self._read, 4096)
            except OSError:  # BlockingIOError: nothing (more) to read; or closed
                return rung
            if not data:
                return rung
            rung = True

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` s; True if rung (and answered)."""
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        poller.poll(max(timeout, 0.0) * 1000)
        return self.clear()


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class StopEvent(threading.Event):
    """The daemon's stop flag; setting it rings every attached waker, so a worker in a long
    wait notices the stop at once, whoever sets it (a signal, Daemon.stop, a test)."""

    def __init__(self) -> None:
        super().__init__()
        self._rings: list[Callable[[], None]] = []

    def on_set(self, ring: Callable[[], None]) -> None:
        self._rings.append(ring)

    def set(self) -> None:
        super().set()
        for ring in list(self._rings):
            ring()
