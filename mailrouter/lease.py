"""One instance per mailbox: the lease a mailbox loop (or reply watcher) holds while it works.

Several `mailrouter run` processes may share one database. Each mailbox must be worked by one
of them at a time, or two would fetch, forward and file the same mail. The lock is one the
database server or the kernel drops by itself when its holder dies, so a survivor takes over
without waiting for an expiry:

- PostgreSQL: a session-level advisory lock on a connection of its own (TCP keepalives on, so a
  holder cut off from the server loses it too). The holder checks its connection before every
  round; a holder that lost the connection stops working the mailbox at once.
- SQLite (one machine): an exclusive `flock` on a file in the runtime directory, named after
  the database file; it ends with the process. Two daemons pointed at one SQLite file by mistake thus share nothing but the wait.

The `leases` table only shows who holds what (`status`); the locks decide.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, delete, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from mailrouter.store import LeaseRow, state_write_failure, utcnow

log = logging.getLogger("mailrouter.lease")

# Keepalives on both ends of the lease's connection. libpq's (client side) make the holder's own
# check fail within idle + interval * count seconds when its network dies; the server's, set for
# this session, make PostgreSQL drop a vanished holder's connection, and with it the lock, in
# the same ~11 s (its default is the kernel's two hours: a powered-off holder kept its mailboxes).
SERVER_KEEPALIVES = "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
              "options": SERVER_KEEPALIVES}
RENEW_EVERY = 10.0  # seconds between updates of the displayed renewed_at
# How often a waiting instance tries to take over: the failover time, since a dead holder's
# lock is dropped by the database server or the kernel at once.
LEASE_POLL = 5.0


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Lease:
    """acquire() (non-blocking) -> held() before each round -> release(). Not thread-safe:
    one per mailbox loop, used from that loop's thread."""

    def __init__(self, name: str, sessions: sessionmaker[Session], clock=utcnow) -> None:
        self.name, self.sessions, self.clock = name, sessions, clock
        self._since: datetime | None = None
        self._shown_at: datetime | None = None
        self._show_failing = False

    # -- what the lock is (per store)
    def _try_lock(self) -> bool:
        raise NotImplementedError

    def _lock_alive(self) -> bool:
        raise NotImplementedError

    def _unlock(self) -> None:
        raise NotImplementedError

    # -- the protocol
    def acquire(self) -> bool:
        if self._since is not None:
            return self.held()
        if not self._try_lock():
            return False
        self._since = self.clock()
        self._show()
        return True

    def held(self) -> bool:
        """True while the lock is ours; False once it is lost (the caller stops working)."""
        if self._since is None:
            return False
        if not self._lock_alive():
            log.error("%s: lease lost (database connection gone); stopping work on it", self.name)
            self._since = None
            self._unlock()
            return False
        now = self.clock()
        if self._shown_at is None or (now - self._shown_at).total_seconds() >= RENEW_EVERY:
            self._show()
        return True

    def release(self) -> None:
        if self._since is not None:
            self._since = None
            try:
                with self.sessions.begin() as session:
                    session.execute(delete(LeaseRow).where(LeaseRow.name == self.name,
                                                           LeaseRow.holder == instance_name()))
            except (SQLAlchemyError, OSError):
                pass  # the display row only; the lock goes with _unlock
        self._unlock()

    def holder(self) -> str | None:
        """Who the table says holds it (for the "waiting" log line)."""
        with self.sessions() as session:
            row = session.get(LeaseRow, self.name)
            return f"{row.holder} since {row.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if row else None

    def _show(self) -> None:
        now = self.clock()
        try:
            with self.sessions.begin() as session:
                if session.get_bind().dialect.name == "sqlite":
                    # display only: never wait out the 60 s busy timeout behind a writer that is
                    # stuck on a full or failing disk (the connection is not pooled)
                    session.connection().exec_driver_sql("PRAGMA busy_timeout = 200")
                row = session.get(LeaseRow, self.name)
                if row is None:
                    session.add(LeaseRow(name=self.name, holder=instance_name(), acquired_at=self._since or now,
                                         renewed_at=now))
                else:
                    row.holder, row.acquired_at, row.renewed_at = instance_name(), self._since or now, now
            self._shown_at, self._show_failing = now, False
        except (SQLAlchemyError, OSError) as exc:  # display only: never a reason to stop working
            self._shown_at = now  # try again at the next renewal, not every round
            if not self._show_failing:
                database = str(self.sessions.kw["bind"].url)
                why = state_write_failure(exc, database) or str(exc).splitlines()[0]
                log.warning("%s: could not record the lease for status: %s", self.name, why)
            self._show_failing = True


class PostgresLease(Lease):
    def __init__(self, name: str, sessions: sessionmaker[Session], url: str, clock=utcnow) -> None:
        super().__init__(name, sessions, clock)
        self._engine = create_engine(url, poolclass=NullPool, connect_args=KEEPALIVES)
        self._conn: Connection | None = None
        # advisory locks take a bigint; a stable hash of the name keeps instances in agreement
        self._key = int.from_bytes(hashlib.sha256(f"mailrouter {name}".encode()).digest()[:8], "big", signed=True)

    def _try_lock(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            return bool(self._conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}))
        except SQLAlchemyError as exc:
            log.warning("%s: cannot reach the database for the lease: %s", self.name, exc)
            self._drop()
            return False

    def _lock_alive(self) -> bool:
        try:
            return self._conn is not None and self._conn.scalar(text("SELECT 1")) == 1
        except SQLAlchemyError:
            return False

    def _unlock(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            except SQLAlchemyError:
                pass  # a dead connection holds nothing
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None


class FileLease(Lease):
    def __init__(self, name: str, sessions: sessionmaker[Session], path: Path, clock=utcnow) -> None:
        super().__init__(name, sessions, clock)
        self.path = path
        self._fd: int | None = None

    def _try_lock(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _lock_alive(self) -> bool:
        # a lock file deleted by hand would let a second daemon lock a new file of that name
        try:
            return self._fd is not None and os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def _unlock(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class NoLease(Lease):
    """Always held, shown nowhere: an in-memory SQLite database cannot be shared, so there is
    nobody to exclude; also what a mailbox loop holds before run() takes its real lease."""

    def acquire(self) -> bool:
        return True

    def held(self) -> bool:
        return True

    def release(self) -> None:
        pass


def lease_for(name: str, url: str, sessions: sessionmaker[Session], clock=utcnow) -> Lease:
    """The lease of `name` ("mailbox sales") for the database at `url`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return PostgresLease(name, sessions, url, clock)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return FileLease(name, sessions, lock_path(parsed.database, name), clock)
    return NoLease(name, sessions, clock)


def lock_path(database: str, name: str) -> Path:
    """Where the flock of `name` for the SQLite file `database` lives: in the runtime directory
    ($RUNTIME_DIRECTORY under systemd, else the temp directory), never beside the database, so
    a state disk that fails can be unmounted and repaired while the daemon holds its leases."""
    folder = Path(os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or tempfile.gettempdir())
    digest = hashlib.sha256(os.path.realpath(database).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return folder / f"mailrouter-{digest}-{safe}.lock"


def work_while_held(lease: Lease, label: str, work: Callable[[], None], stop: threading.Event,
                    poll: float = LEASE_POLL) -> None:
    """Run `work` whenever the lease is ours, until `stop`. `work` returns when it sees the
    lease lost (held() False) or stop set; then this waits to take the lease again."""
    try:
        while _await(lease, label, stop, poll):
            work()
    finally:
        lease.release()


def _await(lease: Lease, label: str, stop: threading.Event, poll: float) -> bool:
    """Until the lease is ours (True) or stop is set (False); says once that it waits."""
    waiting = False
    while not stop.is_set():
        if lease.acquire():
            if waiting:
                log.info("%s: taken over; this instance works it now", label)
            return True
        if not waiting:
            log.info("%s: worked by another instance (%s); waiting to take over", label,
                     lease.holder() or "holder unknown")
            waiting = True
        stop.wait(poll)
    return False
