"""The database side of a first start: has this folder been watched, and recording adopted mail.

Adopted rows are ordinary `messages` rows in state `adopted`: `known_uids` then skips them like
any message seen before, the filer never picks them up (it files only decided/sent rows), and
no assignment exists, so the reply clock never runs for them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.act import ledger
from mailrouter.store import MessageRow, WatchedFolderRow


@dataclass(frozen=True)
class Watched:
    first_seen_at: datetime
    uidvalidity: int


def watched(sessions: sessionmaker[Session], mailbox: str, source: str) -> Watched | None:
    """The folder's watch record; None when it was never watched (a first start).
    A database older than this table that already holds messages from the folder counts as
    watched since the epoch of its oldest row (an upgrade is not a first start)."""
    with sessions() as session:
        row = session.scalars(select(WatchedFolderRow).where(
            WatchedFolderRow.mailbox == mailbox, WatchedFolderRow.source == source)).first()
        if row is not None:
            return Watched(row.first_seen_at, row.uidvalidity)
        oldest = session.scalars(select(MessageRow).where(
            MessageRow.mailbox == mailbox, MessageRow.source == source)
            .order_by(MessageRow.received_at).limit(1)).first()
        return Watched(oldest.received_at, oldest.uidvalidity) if oldest else None


def _adopted_rows(mailbox: str, source: str, uidvalidity: int, uids: Sequence[int], now: datetime) -> list[dict]:
    return [dict(mailbox=mailbox, source=source, uidvalidity=uidvalidity, uid=uid, raw_sha256="",
                 content_key="", size=0,
                 reason="in the folder before mailrouter watched it", folder=source, keywords="",
                 received_at=now, decided_at=now, file_attempts=0) for uid in uids]


def record_adopted(sessions: sessionmaker[Session], mailbox: str, source: str, uidvalidity: int,
                   adopt: Sequence[int], now: datetime, first_seen_at: datetime | None = None) -> None:
    """One transaction: the adopted rows and the folder's watch record (created, or moved to the
    new UIDVALIDITY), so a crash in between cannot leave a half-adopted folder that the next start
    would treat as known. `first_seen_at` keeps an existing record's first start."""
    values = _adopted_rows(mailbox, source, uidvalidity, adopt, now)
    with sessions.begin() as session:
        ledger.adopted(session, values)
        row = session.scalars(select(WatchedFolderRow).where(
            WatchedFolderRow.mailbox == mailbox, WatchedFolderRow.source == source)).first()
        if row is None:
            session.add(WatchedFolderRow(mailbox=mailbox, source=source, first_seen_at=first_seen_at or now,
                                         uidvalidity=uidvalidity, adopted=len(adopt)))
        else:
            row.uidvalidity, row.adopted = uidvalidity, row.adopted + len(adopt)
