"""A message's failed tries, in the database, so "twice the same way, then Quarantine" holds
across restarts too (issue 11).

A try is marked before its risky step and unmarked after it, in transactions of their own: a
mark still there when the message comes round again is a try the process died in (SIGKILL by
the watchdog, the OOM killer). A message with a mark is tried alone, and a death while it was
alone counts as its failure like an exception does; a batch's death blames none of its
messages, so one poison message does not take its batch down with it, and an innocent one
needs two deaths of its own before it is quarantined.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.model import Clock
from mailrouter.store import StrikeRow

DIED = "the daemon ended while working on it"  # the reason of a try the process did not survive
_CHUNK = 300  # locations per statement: 4 parameters each, under SQL parameter limits


@dataclass(frozen=True)
class Arrival:
    """Where a message was found: its row's location."""

    mailbox: str
    source: str
    uidvalidity: int
    uid: int


def twice(why: str) -> str:
    """The reason a message is quarantined with after the second identical failure."""
    return f"failed twice the same way: {why}"


def struck_again(before: str | None, why: str) -> bool:
    """A failure is the message's own once it happens twice the same way."""
    return before == why


class Strikes:
    """Each message's last failure and its try under way, keyed by location."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock):
        self.sessions = sessions
        self.clock = clock

    def struck(self, places: Sequence[Arrival]) -> set[Arrival]:
        """Those of `places` with a failed or unfinished try: they are tried alone."""
        if not places:
            return set()
        with self.sessions() as session:
            return {_arrival(row) for row in _rows(session, places)}

    def begin(self, places: Sequence[Arrival]) -> dict[Arrival, str]:
        """Mark a try of each, committed before the caller's risky step. A mark left by an
        earlier try of the message alone counts as that try's failure (DIED); one left by a
        batch blames none of its messages, which are then tried alone. Returns the messages now
        struck twice the same way, with the reason to quarantine them with, untried."""
        if not places:
            return {}
        now, alone, out = self.clock(), len(places) == 1, {}
        with self.sessions.begin() as session:
            found = {_arrival(row): row for row in _rows(session, places)}
            new = [dict(_columns(p), started_at=now, alone=alone) for p in places if p not in found]
            if new:  # one executemany: most tries are first tries (issue 7: the ORM's unit of work costs)
                session.execute(insert(StrikeRow), new)
            for place, row in found.items():
                if row.started_at is not None and row.alone:  # its own last try never ended
                    if struck_again(row.reason, DIED):
                        out[place] = twice(DIED)
                    row.reason = DIED
                row.started_at, row.alone = now, alone
        return out

    def last_failure(self, place: Arrival, session: Session) -> str | None:
        """How the message's last try failed (in the caller's transaction), or None."""
        return session.scalar(select(StrikeRow.reason).where(_at([place])))

    def failed(self, place: Arrival, why: str) -> bool:
        """The try raised `why`; True if the one before failed the same way."""
        with self.sessions.begin() as session:
            row = session.scalars(select(StrikeRow).where(_at([place]))).first()
            if row is None:
                session.add(StrikeRow(**_columns(place), reason=why))
                return False
            before, row.reason, row.started_at = row.reason, why, None
            return struck_again(before, why)

    def ended(self, places: Sequence[Arrival]) -> None:
        """The tries ended without a verdict (rolled back with their batch): not deaths."""
        with self.sessions.begin() as session:
            for chunk in _chunks(places):
                session.execute(update(StrikeRow).where(_at(chunk)).values(started_at=None))

    def clear(self, places: Sequence[Arrival], session: Session | None = None) -> None:
        """The messages are recorded: forget their strikes, in the caller's transaction if given
        (then they go with the rows that settle them)."""
        if session is None:
            with self.sessions.begin() as own:
                self.clear(places, own)
            return
        for chunk in _chunks(places):
            session.execute(delete(StrikeRow).where(_at(chunk)))


def _rows(session: Session, places: Sequence[Arrival]) -> Iterable[StrikeRow]:
    for chunk in _chunks(places):
        yield from session.scalars(select(StrikeRow).where(_at(chunk)))


def _at(places: Sequence[Arrival]) -> ColumnElement[bool]:
    """The rows of `places`, per folder a UID list (the unique index finds them; a row-value
    IN made SQLite scan)."""
    folders: dict[tuple[str, str, int], list[int]] = {}
    for p in places:
        folders.setdefault((p.mailbox, p.source, p.uidvalidity), []).append(p.uid)
    return or_(*(and_(StrikeRow.mailbox == mailbox, StrikeRow.source == source, StrikeRow.uidvalidity == validity,
                      StrikeRow.uid.in_(uids)) for (mailbox, source, validity), uids in folders.items()))


def _chunks(places: Sequence[Arrival]) -> Iterable[Sequence[Arrival]]:
    for start in range(0, len(places), _CHUNK):
        yield places[start:start + _CHUNK]


def _arrival(row: StrikeRow) -> Arrival:
    return Arrival(row.mailbox, row.source, row.uidvalidity, row.uid)


def _columns(place: Arrival) -> dict[str, Any]:
    return dict(mailbox=place.mailbox, source=place.source, uidvalidity=place.uidvalidity, uid=place.uid)
