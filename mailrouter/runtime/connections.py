"""Which mailboxes and reply sources are not connected, told where a person looks: a row per
outage for `mailrouter status` (it reads only the database) and systemd's STATUS line.

The links (intake/health.py) decide what is said in the log; this only writes it down. A
failing write never stops a worker: the state is display, and the log has already said it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.intake.health import REFUSED, Link, Outage
from mailrouter.lease import instance_name
from mailrouter.store import ConnectionProblemRow, utcnow

log = logging.getLogger("mailrouter.connection")

REASON_CHARS = 1000  # the column's width
STATUS_REASON_CHARS = 120  # per worker on systemd's one STATUS line


def status_line(outages: dict[str, Outage]) -> str:
    """'not connected: mailbox late (since 22:31 UTC, login refused: ...)' or ''."""
    if not outages:
        return ""
    parts = [f"{label} (since {o.since:%H:%M} UTC, {'login refused' if o.kind == REFUSED else 'unreachable'}: "
             f"{_short(o.reason, STATUS_REASON_CHARS)})" for label, o in sorted(outages.items())]
    return "not connected: " + "; ".join(parts)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Board:
    """Every worker's Link, and where their changes are written."""

    def __init__(self, sessions: sessionmaker[Session], on_status: Callable[[str], object] = lambda text: None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.links: dict[str, Link] = {}
        self._on_status, self._clock = on_status, clock
        self._lock = threading.Lock()
        self._write_failed = False

    def link(self, label: str) -> Link:
        with self._lock:
            return self.links.setdefault(label, Link(label, self._changed, self._clock))

    def retry_soon(self) -> None:
        """Every worker not connected tries again now (after a reload)."""
        with self._lock:
            links = list(self.links.values())
        for link in links:
            if link.outage is not None:
                link.retry_soon()

    def outages(self) -> dict[str, Outage]:
        with self._lock:
            links = list(self.links.values())
        return {link.label: link.outage for link in links if link.outage is not None}

    def _changed(self, label: str, outage: Outage | None) -> None:
        self._write(label, outage)
        self._on_status(status_line(self.outages()))

    def _write(self, label: str, outage: Outage | None) -> None:
        try:
            with self.sessions.begin() as session:
                if outage is None:
                    session.execute(delete(ConnectionProblemRow).where(ConnectionProblemRow.name == label))
                else:
                    session.merge(ConnectionProblemRow(
                        name=label, kind=outage.kind, reason=_short(outage.reason, REASON_CHARS),
                        since=outage.since, tried_at=outage.tried_at, holder=instance_name()))
            self._write_failed = False
        except SQLAlchemyError as exc:
            if not self._write_failed:  # once per failing spell: the worker's own log line said the rest
                log.warning("%s: connection state not written for `status` (%s); routing goes on",
                            label, type(exc).__name__)
            self._write_failed = True
