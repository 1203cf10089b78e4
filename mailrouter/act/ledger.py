"""The message ledger: every change of a message's state, folder or owner, one function per arrow.

    (new) ──decided──▶ decided ──sent / undeliverable──▶ sent ──filed──▶ filed
                          └────────────filed (nothing to send)──────────────▲
    (history) ──adopted──▶ adopted                 filed/decided/sent ──taken_over──▶ decided
    refiled: the copy's folder (and owner) follows a reassignment or the pool, in any live state
             (set_aside: to Quarantine, when the ladder cannot parse it again);
             a filed copy keeps `refile_from` (where it is) until the filer has moved it: settled

A restart reads the rows that are not `filed` and carries on from there (docs/ARCHITECTURE.md,
"State and crash safety"). The callers own the transaction; these functions only write, and
refuse an arrow the diagram does not have.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from mailrouter.model import Outcome
from mailrouter.store import ADOPTED, DECIDED, FILED, SENT, MessageRow, inserted_id, table_of

# where each state may go next (a manager's move into Assign/ takes any row over, see taken_over)
ARROWS: dict[str, frozenset[str]] = {
    DECIDED: frozenset({SENT, FILED}),
    SENT: frozenset({FILED}),
    FILED: frozenset(),
    ADOPTED: frozenset(),
}
_UPDATE = update(table_of(MessageRow))
# Built once: constructing a statement per message cost more than executing it (issue 7).
_INSERT = insert(table_of(MessageRow))
_CHUNK = 1000  # ids per statement: stays under SQL parameter limits


class ImpossibleTransition(ValueError):
    """A bug: a message asked to move along an arrow the ledger does not have."""


def check(current: str, new: str) -> None:
    if new not in ARROWS.get(current, frozenset()):
        raise ImpossibleTransition(f"a message cannot go from {current!r} to {new!r}")


def decided(session: Session, values: dict) -> MessageRow:
    """A new message's row, in one INSERT with everything known up front (no ORM flush, no
    UPDATE after it); returns the row as written, outside the session."""
    values = dict(values, state=DECIDED)
    row_id = inserted_id(session.connection().execute(_INSERT, values))
    return MessageRow(id=row_id, **values)


def adopted(session: Session, values: Sequence[dict]) -> None:
    """History found in a folder when it was first watched: recorded, never forwarded."""
    rows = [dict(v, state=ADOPTED, outcome=ADOPTED) for v in values]
    for start in range(0, len(rows), _CHUNK):
        session.execute(insert(MessageRow), rows[start:start + _CHUNK])


def moved_location(row: MessageRow, uidvalidity: int, uid: int) -> None:
    """The same message under a new UID (UIDVALIDITY changed): the row follows it."""
    row.uidvalidity, row.uid = uidvalidity, uid


def taken_over(row: MessageRow, source: str, uidvalidity: int, uid: int, decided_values: dict,
               now: datetime) -> None:
    """A manager moved the message into an Assign/ folder: its row is decided again, from there."""
    for name, value in decided_values.items():
        setattr(row, name, value)
    row.source, row.uidvalidity, row.uid = source, uidvalidity, uid
    row.state, row.decided_at, row.filed_at, row.refile_from = DECIDED, now, None, None


def redecided(session: Session, row: MessageRow, values: dict) -> None:
    """A decided row's decision replaced before anything was sent (a forward that cannot be built)."""
    if row.state != DECIDED:
        raise ImpossibleTransition(f"message #{row.id} is {row.state}: its decision is no longer open")
    _set(session, row, values)


def sent(session: Session | Connection, message_ids: Iterable[int], now: datetime) -> None:
    """SMTP accepted these messages' forwards: their copies can be filed."""
    ids = list(message_ids)
    for start in range(0, len(ids), _CHUNK):
        session.execute(_UPDATE.where(MessageRow.id.in_(ids[start:start + _CHUNK]), MessageRow.state == DECIDED)
                        .values(state=SENT, sent_at=now))


def undeliverable(row: MessageRow, reason: str, folder: str, keywords: str) -> None:
    """The forward will never arrive. A copy still waiting is filed for the manager instead; one
    already filed elsewhere (a reassigned one) keeps its place, with the reason recorded."""
    row.reason = f"{row.reason}; {reason}"
    if row.state == DECIDED:
        check(row.state, SENT)
        row.outcome, row.state, row.folder, row.keywords = Outcome.UNDELIVERABLE.value, SENT, folder, keywords


def filed(session: Session | Connection, message_ids: Sequence[int], now: datetime) -> None:
    """The shared copies were moved to their folders (or had already gone): done."""
    for start in range(0, len(message_ids), _CHUNK):
        session.execute(_UPDATE.where(MessageRow.id.in_(message_ids[start:start + _CHUNK]),
                                      MessageRow.state.in_((DECIDED, SENT)))
                        .values(state=FILED, filed_at=now, last_error=None, refile_from=None))


def filing_failed(session: Session, message_ids: Sequence[int], error: str) -> None:
    """The move failed: the copy stays where it is, to be filed by the next round."""
    for start in range(0, len(message_ids), _CHUNK):
        session.execute(_UPDATE.where(MessageRow.id.in_(message_ids[start:start + _CHUNK]))
                        .values(file_attempts=MessageRow.file_attempts + 1, last_error=error))


def refiled(row: MessageRow, folder: str, keywords: Sequence[str], rep: str | None = None) -> None:
    """The copy's folder follows its owner (a reassignment) or the pool. A copy not filed yet is
    simply filed there; a filed one keeps where it is in `refile_from` until the mailbox loop's
    filer has moved it (runtime/mailbox.py), so a move cut off is done by the next round."""
    if row.state == FILED:
        where = row.refile_from or row.folder
        row.refile_from, row.file_attempts = (where if where != folder else None), 0
    row.folder, row.keywords = folder, " ".join(keywords)
    if rep is not None:
        row.rep = rep


def set_aside(row: MessageRow, folder: str, keywords: Sequence[str], why: str) -> None:
    """The ladder could not read the original again: its copy goes to Quarantine like an
    unreadable one at intake, with why added to the reason. The outcome stays: it was routed."""
    refiled(row, folder, keywords)
    row.reason = f"{row.reason}; {why}"


def settled(session: Session, row_id: int, folder: str | None = None, error: str | None = None) -> None:
    """The filer is done with a refile: the copy is in the row's folder, or, with `folder`, it
    could not be moved from there, and the row follows the copy (`error` says why)."""
    values: dict = dict(refile_from=None)
    if folder is not None:
        values.update(folder=folder, last_error=error)
    session.execute(_UPDATE.where(MessageRow.id == row_id).values(**values))


def refile_failed(session: Session, row_id: int, error: str) -> None:
    """The server refused the move: tried again next round, up to the filer's limit."""
    session.execute(_UPDATE.where(MessageRow.id == row_id)
                    .values(file_attempts=MessageRow.file_attempts + 1, last_error=error))


def _set(session: Session, row: MessageRow, values: dict) -> None:
    for name, value in values.items():
        setattr(row, name, value)
    if row not in session:  # written by `decided`: the session does not track it
        session.execute(_UPDATE.where(MessageRow.id == row.id).values(**values))
