"""The database: every step of a message's life is recorded here before the next is taken.

A message row moves through states  decided -> sent -> filed  (non-routed ones skip `sent`).
A restart reads the rows that are not `filed` and carries on from there, so nothing is lost.
"""
from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (DateTime, ForeignKey, Index, LargeBinary, String, Table, Text, TypeDecorator,
                        UniqueConstraint, create_engine, event, func, inspect, select, text)
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

# Message states
DECIDED = "decided"  # decision recorded; forward (if any) queued in the outbox
SENT = "sent"  # the forward was accepted by SMTP (or nothing had to be sent)
FILED = "filed"  # the copy in the shared mailbox was tagged and moved: done
ADOPTED = "adopted"  # already in the folder when it was first watched: left there, never forwarded


class SchemaError(Exception):
    """The database's schema is not the one this release works with; the message says what to do."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which has no time zones) too."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC times")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime}


def inserted_id(result: CursorResult[Any]) -> int:
    """The new row's primary key, as the driver reports it for a one-row INSERT."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the database reported no key for the row just inserted")
    return int(key[0])


def table_of(model: type[Base]) -> Table:
    """A model's Table, typed as one (`__table__` is typed as any FromClause), for the plain
    Core INSERTs and UPDATEs built once at import."""
    return Base.metadata.tables[model.__tablename__]


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("mailbox", "source", "uidvalidity", "uid", name="uq_message_location"),
        Index("ix_messages_state", "mailbox", "state"),
        Index("ix_messages_refile", "mailbox", "refile_from"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(300), default="INBOX")  # folder the copy is in now
    uidvalidity: Mapped[int]
    uid: Mapped[int]
    message_id: Mapped[str] = mapped_column(String(500), default="")
    raw_sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_key: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[str | None] = mapped_column(String(200))
    rep: Mapped[str | None] = mapped_column(String(100), index=True)
    team: Mapped[str | None] = mapped_column(String(100))
    folder: Mapped[str] = mapped_column(String(500))  # where the copy is filed, or is to be refiled
    keywords: Mapped[str] = mapped_column(String(500), default="")  # space-separated
    # set while a filed copy is to follow `folder` (a reassignment, the pool): where it was filed
    # before; the mailbox loop's filer moves it and clears this (runtime/mailbox.py)
    refile_from: Mapped[str | None] = mapped_column(String(500))
    sender: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    country: Mapped[str | None] = mapped_column(String(2))
    language: Mapped[str | None] = mapped_column(String(8))
    products: Mapped[str] = mapped_column(String(500), default="")
    forward_message_id: Mapped[str | None] = mapped_column(String(500))
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    received_at: Mapped[datetime]  # arrival: INTERNALDATE bounded by first seen (sla/clock.py)
    decided_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    filed_at: Mapped[datetime | None]
    file_attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class StrikeRow(Base):
    """A message's failed or unfinished try (act/strikes.py): `started_at` is set before a try and
    cleared after it, so a row still marked after a restart is a try the process died in."""

    __tablename__ = "strikes"
    __table_args__ = (UniqueConstraint("mailbox", "source", "uidvalidity", "uid", name="uq_strike_location"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(300))
    uidvalidity: Mapped[int]
    uid: Mapped[int]
    reason: Mapped[str | None] = mapped_column(Text)  # how the last try failed; None: none failed yet
    started_at: Mapped[datetime | None]  # a try under way (or one the process died in)
    alone: Mapped[bool] = mapped_column(default=False)  # that try was of this message alone


class OutboxRow(Base):
    """A forward waiting for SMTP; its bytes are kept until accepted, then dropped.

    A big original is not copied in: `payload` is then the forward up to the original,
    `tail` what follows it, and `spool_path` the file the original is streamed from.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "mailbox", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))  # whose worker sends it
    kind: Mapped[str] = mapped_column(String(20), default="forward")  # forward | notice
    message: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    sender: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    deadline: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    tail: Mapped[bytes | None] = mapped_column(LargeBinary)
    spool_path: Mapped[str | None] = mapped_column(String(1000))


class AssignmentRow(Base):
    """One inquiry given to one rep: the unit the first-reply clock and reports count.

    A reassignment ends this row (end_reason "reassigned") and starts a new one for the next
    rep, linked by `reassigned_from`, so each rep's figures stay their own.
    """

    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_open", "first_reply_at", "ended_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    rep: Mapped[str] = mapped_column(String(100), index=True)
    team: Mapped[str | None] = mapped_column(String(100))
    customer: Mapped[str] = mapped_column(String(320), index=True)
    assigned_at: Mapped[datetime] = mapped_column(index=True)
    how: Mapped[str] = mapped_column(String(20), default="rule")  # rule|registry|manual|reassign
    due_at: Mapped[datetime | None]  # first reply due (business hours applied)
    ladder: Mapped[str] = mapped_column(String(50), default="default")
    forward_message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    first_reply_at: Mapped[datetime | None]
    reply_message_id: Mapped[str | None] = mapped_column(String(500))
    replied_by: Mapped[str | None] = mapped_column(String(100))  # usually the rep; else a colleague
    reply_seconds: Mapped[float | None]  # wall time, assigned -> first reply
    reply_business_seconds: Mapped[float | None]  # the same in the team's business hours
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(30))  # reassigned|undeliverable|pooled|quarantined
    reassigned_from: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"))
    # A Reply-To the forward did not use (decide/trust.py): a reply sent there alone stops no clock.
    suspect_reply_to: Mapped[str | None] = mapped_column(String(320))


class LeaseRow(Base):
    """Who works a mailbox or reply source now, for `status`. The lock itself is elsewhere
    (lease.py: a PostgreSQL advisory lock or a file lock); this row only shows it."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # "mailbox sales", "reply_source li"
    holder: Mapped[str] = mapped_column(String(300))  # host:pid
    acquired_at: Mapped[datetime]
    renewed_at: Mapped[datetime]


class ConnectionProblemRow(Base):
    """A mailbox or reply source this daemon could not connect to, for `status` (issue 17): one
    row while it is out, removed when it connects. A login refused needs a person; an
    unreachable server may come back by itself (intake/health.py)."""

    __tablename__ = "connection_problems"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # "mailbox sales", "reply source li"
    kind: Mapped[str] = mapped_column(String(20))  # refused | unreachable
    reason: Mapped[str] = mapped_column(String(1000))
    since: Mapped[datetime]
    tried_at: Mapped[datetime]
    holder: Mapped[str] = mapped_column(String(300))  # host:pid of the instance that tried


class WatchedFolderRow(Base):
    """A folder the daemon has watched at least once. Its absence is what makes a start a
    *first* start (issue 12): restarts and UIDVALIDITY changes find the row and adopt nothing."""

    __tablename__ = "watched_folders"
    __table_args__ = (UniqueConstraint("mailbox", "source", name="uq_watched_folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(300))
    first_seen_at: Mapped[datetime]
    uidvalidity: Mapped[int] = mapped_column(default=0)  # as last seen: a change re-adopts, never routes history
    adopted: Mapped[int] = mapped_column(default=0)


class SlaStepRow(Base):
    """A ladder step taken (reminder, escalation, reassignment); unique, so never taken twice."""

    __tablename__ = "sla_steps"
    __table_args__ = (UniqueConstraint("assignment", "step", name="uq_sla_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment: Mapped[int] = mapped_column(ForeignKey("assignments.id"), index=True)
    step: Mapped[str] = mapped_column(String(50))  # e.g. "remind@5m"
    kind: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime]
    done_at: Mapped[datetime]
    detail: Mapped[str] = mapped_column(Text, default="")


class CollisionRow(Base):
    """A rep wrote to a customer the registry gives to another rep (撞单)."""

    __tablename__ = "collisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer: Mapped[str] = mapped_column(String(320), index=True)
    owner: Mapped[str] = mapped_column(String(100))
    rep: Mapped[str] = mapped_column(String(100), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    message_id: Mapped[str] = mapped_column(String(500), default="")
    notified: Mapped[bool] = mapped_column(default=False)


class ChatPostRow(Base):
    """A chat notice waiting for its channel's batch post, kept until the post is done so a
    crash inside the batch window loses nothing (issue 15 item 3): drained at start."""

    __tablename__ = "chat_posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(String(100), index=True)  # [[sla.webhook]] name
    notice: Mapped[str] = mapped_column(Text)  # the Notice as JSON, in the channel's language
    mention: Mapped[str | None] = mapped_column(String(200))  # the rep's chat user id, if any
    queued_at: Mapped[datetime]


class SentCursorRow(Base):
    """How far a watched Sent/journal folder has been read, so a restart reads on from there."""

    __tablename__ = "sent_cursors"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)  # e.g. "rep:zhang:Sent"
    uidvalidity: Mapped[int]
    last_uid: Mapped[int]


class RepStatusRow(Base):
    """A rep marked away (`mailrouter rep away`): no new assignments until `away_until`."""

    __tablename__ = "rep_status"

    rep: Mapped[str] = mapped_column(String(100), primary_key=True)
    away_until: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")


class DigestSentRow(Base):
    """A digest queued for a supervisor, so it goes out once per period."""

    __tablename__ = "digests_sent"

    supervisor: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # daily | weekly
    period_end: Mapped[datetime] = mapped_column(primary_key=True)
    queued_at: Mapped[datetime]


class TeamCursorRow(Base):
    """Round-robin position per team, so a restart does not start the rotation over."""

    __tablename__ = "team_cursor"

    team: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_rep: Mapped[str] = mapped_column(String(100))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (reports, status) never block the daemon
    # FULL: each commit is on the disk before the next step (a forward, a move) relies on it.
    # NORMAL survives a process crash but not a disk that fails: it lost committed "sent" rows,
    # and with them the outbox ids the accepted log names (a later row could take the id).
    # One WAL fsync per commit, and commits are per batch (measured in docs/BENCHMARKS.md).
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=60000")  # a batch of big messages may hold the writer a while
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def begin_writing(session: Session) -> None:
    """Begin the session's transaction as a writer now, so SAVEPOINTs nest inside it.

    Python's sqlite3 driver issues BEGIN only before its first INSERT/UPDATE/DELETE: a SAVEPOINT
    before that would be the outermost transaction, and releasing it would commit. IMMEDIATE
    takes the write lock at once (waiting up to busy_timeout), so the reads that precede the
    writes cannot meet another writer's commit half-way (SQLITE_BUSY_SNAPSHOT)."""
    connection = session.connection()
    driver = connection.connection.dbapi_connection
    if connection.dialect.name == "sqlite" and driver is not None and not driver.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _advisory_key(name: str) -> int:
    """A pg_advisory_xact_lock key: a stable number every instance agrees on."""
    return int.from_bytes(hashlib.sha256(f"mailrouter {name}".encode()).digest()[:8], "big", signed=True)


ASSIGNMENT_LOCK = _advisory_key("team assignment")
DIGEST_LOCK = _advisory_key("digests")


def _hold_advisory(session: Session, key: int) -> None:
    """PostgreSQL: wait for the transaction-level advisory lock `key`, released by commit or
    rollback (or by the server when the holder dies). SQLite: nothing to do, its writers take
    turns already (begin_writing)."""
    if session.connection().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def hold_assignment_lock(session: Session) -> None:
    """Until this transaction ends, be the only instance that reads and moves team state: the
    round-robin cursors, the open counts (least loaded, caps, reassignment) and the duplicate
    check across mailboxes. Without it two instances read the same cursor and pick the same rep.

    One lock, not one per team: open counts and caps belong to reps, and a rep may be in several
    teams or be a rule's or an owner's target, so no smaller set of rows covers a decision."""
    _hold_advisory(session, ASSIGNMENT_LOCK)


def hold_digest_lock(session: Session) -> None:
    """Until this transaction ends, be the only instance queueing digests: every instance runs
    the digest job at the same minute, and the second must see the first's digests_sent rows
    instead of failing on their key."""
    _hold_advisory(session, DIGEST_LOCK)


def claim_assignment(session: Session, assignment_id: int) -> AssignmentRow | None:
    """The assignment, row-locked until this transaction ends; None if another transaction holds
    it (another instance's ladder sweep is taking its step) or it is gone. PostgreSQL: FOR UPDATE
    SKIP LOCKED, so a second sweep passes on instead of waiting to fail on uq_sla_step; SQLite
    ignores the clause, its writers being one at a time already (begin_writing)."""
    return session.scalars(select(AssignmentRow).where(AssignmentRow.id == assignment_id)
                           .with_for_update(skip_locked=True)).first()


@contextmanager
def durable_transaction(sessions: sessionmaker[Session]) -> Iterator[Connection]:
    """A transaction that is on the disk, not only in the OS cache, once it commits: for the
    facts that guard against a second forward ("sent", "filed"). SQLite commits every
    transaction so (`_sqlite_pragmas`); PostgreSQL is told for this transaction, whatever the
    server's `synchronous_commit` says."""
    engine: Engine = sessions.kw["bind"]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO on")
        yield conn


# What to do about a disk-level write failure, by errno.
_DISK_ADVICE = {
    errno.ENOSPC: "free space on that filesystem",
    errno.EDQUOT: "free space or raise the disk quota there",
    errno.EROFS: "make that filesystem writable again (a read-only remount usually means a failing disk: "
                 "see the kernel log)",
    errno.EIO: "check the disk (see the kernel log) or move the state directory",
    errno.ESTALE: "the state filesystem was unmounted or replaced under the running daemon: mount it back "
                  "(restart mailrouter if the move was meant)",
}
# SQLite primary result codes and PostgreSQL SQLSTATEs that mean the same three things;
# SQLite's CANTOPEN is what a WAL database says when its folder turned read-only.
# PROTOCOL is what WAL locking says on a filesystem the kernel aborted (remount,abort).
_SQLITE_ERRNO = {13: errno.ENOSPC, 8: errno.EROFS, 10: errno.EIO, 14: errno.EROFS, 15: errno.EIO}
_SQLSTATE_ERRNO = {"53100": errno.ENOSPC, "25006": errno.EROFS, "58030": errno.EIO}


def state_write_failure(exc: BaseException, database: str = "") -> str | None:
    """One line saying what could not be written, why and what to free, for a full, read-only
    or failing disk under the state (spool files or the database at `database`); None for
    any other error, which is not the disk's fault."""
    if isinstance(exc, OSError) and exc.errno in _DISK_ADVICE:
        where = exc.filename or "a state file"
        return f"cannot write {where}: {os.strerror(exc.errno)}; {_DISK_ADVICE[exc.errno]}"
    if isinstance(exc, DBAPIError):
        number = _database_errno(exc.orig)
        if number is not None:
            label = database_label(database) if database else "(unknown)"
            # SQLite often says only "disk I/O error": the filesystem itself tells which
            number = _filesystem_errno(_sqlite_folder(database)) or number
            return (f"cannot write the database {label}: {exc.orig} ({os.strerror(number)}); "
                    f"{_DISK_ADVICE[number]}")
    return None


def _database_errno(error: BaseException | None) -> int | None:
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return _SQLITE_ERRNO.get(sqlite_code & 0xFF)  # extended codes keep the primary in the low byte
    return _SQLSTATE_ERRNO.get(getattr(error, "sqlstate", None) or "")


def _sqlite_folder(database: str) -> str | None:
    if not database or make_url(database).get_backend_name() != "sqlite":
        return None
    return os.path.dirname(os.path.abspath(make_url(database).database or "")) or None


def _filesystem_errno(folder: str | None) -> int | None:
    """EROFS or ENOSPC if the filesystem holding `folder` is read-only or full, else None."""
    if folder is None:
        return None
    try:
        fs = os.statvfs(folder)
    except OSError:
        return None
    if fs.f_flag & os.ST_RDONLY:
        return errno.EROFS
    return errno.ENOSPC if fs.f_bavail == 0 else None


def database_label(url: str) -> str:
    """The database as a person finds it: a SQLite file's path, a server URL without its password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or url
    return parsed.render_as_string(hide_password=True)


def database_exists(url: str) -> bool:
    """Whether there is a database to read: a SQLite file on disk (a server database is taken
    to exist). Read-only commands ask first, so they never leave an empty database behind."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True
    database = parsed.database
    return database is not None and database not in ("", ":memory:") and os.path.exists(database)


def open_database(url: str, migrate: bool = False) -> sessionmaker[Session]:
    """Sessions on the database at `url`. A new database gets its tables; an older schema is
    upgraded when `migrate` (the daemon, `db upgrade`) and refused with what to run otherwise
    (SchemaError), so a report never reads half-old tables. See migrations/.

    A server database (PostgreSQL) gets one engine, and so one connection pool, per process
    and URL, shared by every caller until close_database(); a SQLite file is cheap to open.
    """
    from mailrouter.migrations import ensure_schema

    with _ENGINES_LOCK:
        engine = _ENGINES.get(url) or _new_engine(url)
        ensure_schema(engine, migrate)
        if engine.dialect.name != "sqlite":
            _ENGINES[url] = engine
    return sessionmaker(engine, expire_on_commit=False)


def close_database(url: str) -> None:
    """Close the pooled connections of a server database opened by open_database()."""
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()


def _new_engine(url: str) -> Engine:
    from mailrouter.registry import models  # noqa: F401  (registers its tables; imports Base from here)

    # A SQLite connection is opened per use (NullPool), so no file stays open between uses:
    # a state disk that failed can be unmounted, repaired and mounted again under the running
    # daemon, which then records what it held in memory instead of forwarding it twice.
    parsed = make_url(url)
    sqlite_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    engine: Engine = create_engine(url, future=True, **({"poolclass": NullPool} if sqlite_file else {}))
    if engine.dialect.name == "sqlite":
        _create_private(engine.url.database)
        event.listen(engine, "connect", _sqlite_pragmas)
        if sqlite_file and not str(parsed.database).startswith("file:"):
            first = place_of(str(parsed.database))
            # before SQLite opens (and would create) the file: an unmounted state disk leaves an
            # empty mount point where a new, empty database would answer "no such table"
            event.listen(engine, "do_connect",
                         lambda *_: check_same_place(str(parsed.database), first))
    return engine


def place_of(path: str) -> tuple[int, int] | None:
    """The (device, inode) at `path`, None if nothing is there."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def check_same_place(path: str, first: tuple[int, int] | None) -> None:
    """Raise OSError(ESTALE) when `path` is no longer the file or folder first found there.

    A state disk unmounted under the running daemon leaves its mount point, an ordinary folder
    on another filesystem: what is written there vanishes when the disk is mounted back, and a
    forgotten acceptance means a forward sent twice. So state writes check where they land."""
    if first is not None and place_of(path) != first:
        raise OSError(errno.ESTALE, "not the file or folder mailrouter started with", path)


def _create_private(database: str | None) -> None:
    """A new SQLite file is made 0600 whatever the umask: it holds customers' addresses and mail
    metadata. SQLite gives its -wal and -shm files the database file's permissions."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # an existing file keeps the permissions its owner gave it


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def optimize_database(sessions: sessionmaker[Session]) -> None:
    """Nightly upkeep: SQLite's query-planner statistics (`PRAGMA optimize`, which SQLite
    recommends for long-lived connections). PostgreSQL's autovacuum does this by itself."""
    with sessions.begin() as session:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("PRAGMA optimize"))


def add_missing_columns(connection: Connection, only: set[tuple[str, str]] | None = None) -> None:
    """Before Alembic, a database from an older release got the nullable columns added since
    (ALTER TABLE ADD COLUMN; existing rows read NULL). migrations/ runs this once on such a
    database, then stamps it with the baseline revision; `only` keeps it to the baseline's
    columns, which later revisions then add themselves."""
    existing = inspect(connection)
    tables = set(existing.get_table_names())
    for table in Base.metadata.sorted_tables:
        if table.name not in tables:
            continue
        have = {c["name"] for c in existing.get_columns(table.name)}
        for column in table.columns:
            if column.name in have or (only is not None and (table.name, column.name) not in only):
                continue
            if not column.nullable:
                raise RuntimeError(f"database table {table.name} lacks column {column.name}, which "
                                   "cannot be added automatically; see the release notes")
            kind = column.type.compile(dialect=connection.dialect)
            connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


def open_assignment_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(AssignmentRow.rep, func.count()).where(
            AssignmentRow.first_reply_at.is_(None), AssignmentRow.ended_at.is_(None)
        ).group_by(AssignmentRow.rep))
    return {rep: n for rep, n in rows}


def away_reps(session: Session, now: datetime) -> set[str]:
    return set(session.scalars(select(RepStatusRow.rep).where(
        RepStatusRow.away_until.is_not(None), RepStatusRow.away_until > now)))


def team_cursors(session: Session) -> dict[str, str]:
    return {r.team: r.last_rep for r in session.scalars(select(TeamCursorRow))}
