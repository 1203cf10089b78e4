"""One worker's IMAP connection as the log and `status` tell it (issue 17: one dead or refusing
server never stops the others).

A mailbox or reply source that cannot connect is retried by its own loop (imap.keep_serving)
while the others run. What a person needs to hear differs by cause:

- unreachable (no answer, connection refused, dropped): said once when the outage begins, then
  quietly retried, with a reminder every UNREACHABLE_REMINDER while it lasts;
- refused (the server rejected the login, or its certificate): a person must act, so it is an
  ERROR again at most every REFUSED_REMINDER while it lasts;
- connected again: one INFO line saying how long it was out.

Every change is handed to `on_change` (runtime/connections.py writes it for `status` and
systemd's STATUS), with None meaning connected.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from mailrouter.intake.imap import ImapAuthError, ImapTlsError

log = logging.getLogger("mailrouter.connection")

REFUSED = "refused"  # a person must act: a password, a certificate
UNREACHABLE = "unreachable"  # the server or the network: it may come back by itself
STOP_CHECK = 0.5  # seconds: how soon a backoff notices a retry_soon() (a stop is noticed at once)
REFUSED_REMINDER = 600.0  # seconds between ERROR lines for the same refused login
UNREACHABLE_REMINDER = 3600.0  # seconds between WARNING lines for the same unreachable server
# A connection lost while running and back within this is a blip (a server closing idle sessions):
# its end is logged at DEBUG, since the loss was already one WARNING and the session logs its start.
BLIP = 60.0


@dataclass(frozen=True)
class Outage:
    kind: str  # REFUSED or UNREACHABLE
    reason: str  # as the server or the socket said it
    since: datetime  # when it was first not connected
    tried_at: datetime  # the last failed try
    at_start: bool = False  # the start-up check failed: its end is news whatever its length


def outage_kind(exc: Exception) -> str:
    """A rejected login or certificate will not fix itself; everything else may."""
    return REFUSED if isinstance(exc, (ImapAuthError, ImapTlsError)) else UNREACHABLE


def reminder_due(kind: str, last_told: float, now: float) -> bool:
    return now - last_told >= (REFUSED_REMINDER if kind == REFUSED else UNREACHABLE_REMINDER)


def format_since(outage: Outage, now: datetime) -> str:
    """'3m04s' — how long a worker has not been connected, for one log line."""
    seconds = max(int((now - outage.since).total_seconds()), 0)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Link:
    """The connection state of one worker ("mailbox sales", "reply source li"), shared by
    the thread that connects and the threads that report it."""

    def __init__(self, label: str, on_change: Callable[[str, Outage | None], None] = lambda label, outage: None,
                 clock: Callable[[], datetime] = _utcnow, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.outage: Outage | None = None
        self._known = False  # nothing said yet: the first connect clears what a previous run left
        self._told_at = 0.0  # monotonic time of the last WARNING or ERROR line about this outage
        self._on_change, self._clock, self._monotonic = on_change, clock, monotonic
        self._lock = threading.Lock()
        self._soon = threading.Event()
        self._unsaid = False  # an outage from the start check, not yet handed to on_change

    def down_at_start(self, kind: str, reason: str, retry: str) -> None:
        """The start-up login failed: one ERROR line; the loop retries while the others run.
        Handed on only once this instance serves the worker (serving()): with several
        instances, a standby's start check must not tell `status` about a mailbox another
        instance works."""
        now = self._clock()
        with self._lock:
            self.outage, self._known, self._told_at = Outage(kind, reason, now, now, True), True, self._monotonic()
            self._unsaid = True
        log.error("%s: not connected at start (%s); retrying %s; the others run", self.label, reason, retry)

    def serving(self) -> None:
        """This instance works the worker now (it holds its lease): hand on the start's outage."""
        with self._lock:
            outage, self._unsaid = (self.outage if self._unsaid else None), False
        if outage is not None:
            self._on_change(self.label, outage)

    def failed(self, exc: Exception, delay: float) -> None:
        """A try failed: said when an outage begins or changes cause, reminded now and then,
        otherwise at DEBUG (a dead server retried every few minutes is one line, not hundreds)."""
        kind, reason, now, tick = outage_kind(exc), str(exc), self._clock(), self._monotonic()
        with self._lock:
            before = self.outage
            if before is None:
                self.outage = Outage(kind, reason, now, now)
            else:
                self.outage = replace(before, kind=kind, reason=reason, tried_at=now)
            loud = before is None or before.kind != kind or reminder_due(kind, self._told_at, tick)
            if loud:
                self._told_at = tick
            self._known, self._unsaid = True, False
            outage = self.outage
        level = logging.DEBUG if not loud else logging.ERROR if kind == REFUSED else logging.WARNING
        if before is None:
            log.log(level, "%s: not connected (%s); retrying in %.0fs", self.label, reason, delay)
        else:
            log.log(level, "%s: %s for %s (%s); retrying in %.0fs; the others run", self.label,
                    "login still refused" if kind == REFUSED else "still not connected",
                    format_since(outage, now), reason, delay)
        self._on_change(self.label, outage)

    def refused(self) -> bool:
        """The last try was a refused login or certificate (a person must act)."""
        outage = self.outage
        return outage is not None and outage.kind == REFUSED

    def retry_soon(self) -> None:
        """End the current backoff: a reload may have brought the password a refused login needed
        (a refused login otherwise waits up to 10 min)."""
        self._soon.set()

    def pause(self, stop: threading.Event, delay: float) -> None:
        """Wait out a backoff of `delay` seconds, or until `stop` or retry_soon()."""
        deadline = self._monotonic() + delay
        while not self._soon.is_set() and not stop.wait(min(max(deadline - self._monotonic(), 0.0), STOP_CHECK)):
            if self._monotonic() >= deadline:
                break
        self._soon.clear()

    def connected(self) -> None:
        """A session is open: one INFO line if it ends an outage."""
        with self._lock:
            before, known = self.outage, self._known
            self.outage, self._known, self._unsaid = None, True, False
        if before is not None:
            now = self._clock()
            news = before.at_start or (now - before.since).total_seconds() >= BLIP
            log.log(logging.INFO if news else logging.DEBUG, "%s: connected, after %s not connected (%s)",
                    self.label, format_since(before, now), before.reason)
        if before is not None or not known:
            self._on_change(self.label, None)
