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

The `leases` table only shows who holds what (`status`); the locks decide. One writer per
process and database (`Instance`) renews all its leases' rows in one transaction.

On PostgreSQL the instances spread the leases among themselves (`Census`): each holds one more
advisory lock of its own while it lives, and each lease connection a shared lock naming its
instance, so `pg_locks` tells every instance how many are alive and who holds how many. An
instance with more than its fair share hands leases over, each at a clean point between rounds
(the caller says when: nothing in flight, everything recorded), and one at or above its share
tries free leases less often, so the instances with fewer take them first.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import random
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, delete, select, text
from sqlalchemy.engine import Connection, Engine, make_url
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
# Spreading (PostgreSQL). An instance at or above its share tries a free lease this often, so
# one below it (trying every LEASE_POLL) takes it first; still within the 30 s failover bound.
AT_SHARE_TRY = 20.0
# A lease handed over is not taken back by the same instance for this long (no ping-pong); the
# instances below their share poll every LEASE_POLL meanwhile.
HAND_BACK_AFTER = 20.0
CENSUS_EVERY = LEASE_POLL  # seconds a count of instances and holdings is reused for
# Key spaces of the two-int advisory locks (pg_locks.objsubid = 2), apart from the leases' own
# bigint keys (objsubid = 1): one lock per live instance, one shared lock per lease it holds.
INSTANCE_SPACE = 0x6D72_0001


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def kind_of(name: str) -> str:
    """"mailbox sales" -> "mailbox": mailboxes and reply sources are spread separately."""
    return name.split(" ", 1)[0]


def holding_space(kind: str) -> int:
    """The key space of the shared locks that count one kind of lease per instance."""
    return int.from_bytes(hashlib.sha256(f"mailrouter holding {kind}".encode()).digest()[:4], "big") >> 1


# -- fair share: pure decisions over a census

@dataclass(frozen=True)
class Census:
    """Who is alive on the database, and how many leases of one kind each holds."""
    instances: frozenset[int]
    held: dict[int, int]  # instance -> leases of the kind it holds

    def of(self, instance: int) -> int:
        return self.held.get(instance, 0)

    def fewest(self) -> int:
        return min(self.of(i) for i in self.instances)

    def free(self, wanted: int) -> int:
        """Leases nobody holds: handed over and not yet taken, or their holder gone."""
        return wanted - sum(self.held.values())

    def counting(self, instance: int, mine: int) -> Census:
        """This census with `instance` holding `mine`: an instance knows its own count better
        than a census up to CENSUS_EVERY old."""
        return Census(self.instances | {instance}, {**self.held, instance: mine})


def fair_share(wanted: int, live: int) -> tuple[int, int]:
    """The fewest and most leases an instance holds when `wanted` are spread over `live`."""
    live = max(live, 1)
    return wanted // live, -(-wanted // live)


def hand_over_due(census: Census, me: int, wanted: int) -> bool:
    """One of mine should go. Above the share: while fewer are free than I hold too many (so
    an instance that kept them all sheds them in one go, each loop at its own clean point). Two
    above the instance with the fewest: only while none is free, so those move one at a time
    and two instances at the share never both hand one to the third."""
    if len(census.instances) < 2 or me not in census.instances:
        return False
    mine, most = census.of(me), fair_share(wanted, len(census.instances))[1]
    if mine > most:
        return census.free(wanted) < mine - most
    return census.free(wanted) <= 0 and mine >= census.fewest() + 2


def eager(census: Census, me: int, wanted: int) -> bool:
    """Try a free lease at every poll: alone, below the share, or holding the fewest (so some
    live instance is always eager). The others try every AT_SHARE_TRY."""
    if len(census.instances) < 2 or me not in census.instances:
        return True
    mine = census.of(me)
    return mine < fair_share(wanted, len(census.instances))[0] or mine <= census.fewest()


def describe_share(census: Census, me: int, wanted: int) -> str:
    low, high = fair_share(wanted, len(census.instances))
    share = str(low) if low == high else f"{low}-{high}"
    return (f"this one holds {census.of(me)}, share {share} of {wanted} over "
            f"{len(census.instances)} instances")


# -- one per process and database: the status rows and the instance's own lock

class Instance:
    """This process on one database: the one writer of its leases' status rows, and (on
    PostgreSQL) its instance lock and the census of all instances."""

    def __init__(self, sessions: sessionmaker[Session], url: str | None) -> None:
        self.sessions = sessions
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._held: dict[str, datetime] = {}  # name -> held since
        self._wanted: set[str] = set()  # names of every lease this process works when it can
        self._renewed_at: datetime | None = None
        self._failing = False
        self._engine: Engine | None = create_engine(url, poolclass=NullPool, connect_args=KEEPALIVES) \
            if url else None
        self._conn: Connection | None = None
        self.id: int | None = None  # our key in INSTANCE_SPACE while the connection lives
        self._census_lock = threading.Lock()  # also guards _conn and id
        self._census: dict[str, tuple[datetime, Census | None]] = {}

    # status rows
    def want(self, name: str) -> None:
        with self._lock:
            self._wanted.add(name)

    # Row writes take turns (_writing), each reading _held inside its turn: a renewal begun
    # before a release would otherwise write back the row the release had just removed.
    def show(self, name: str, since: datetime, now: datetime) -> None:
        """A lease just taken: its row at once (status shows the change), the others' later."""
        with self._writing:
            with self._lock:
                self._held[name] = since
                if self._renewed_at is None:
                    self._renewed_at = now  # the renewal period starts with the first lease
            self._write({name: since}, now)

    def renew_if_due(self, now: datetime) -> None:
        with self._lock:
            if self._renewed_at is not None and (now - self._renewed_at).total_seconds() < RENEW_EVERY:
                return
            self._renewed_at = now
        with self._writing:
            with self._lock:
                held = dict(self._held)
            if held:
                self._write(held, now)

    def hide(self, name: str) -> None:
        with self._writing:
            with self._lock:
                self._held.pop(name, None)
            try:
                with self.sessions.begin() as session:
                    session.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == instance_name()))
            except (SQLAlchemyError, OSError):
                pass  # the display row only; the lock goes with the lease

    def _write(self, held: dict[str, datetime], now: datetime) -> None:
        """One transaction for all `held`; display only, so a failure is a warning, once."""
        try:
            with self.sessions.begin() as session:
                if session.get_bind().dialect.name == "sqlite":
                    # display only: never wait out the 60 s busy timeout behind a writer that is
                    # stuck on a full or failing disk (the connection is not pooled)
                    session.connection().exec_driver_sql("PRAGMA busy_timeout = 200")
                rows = {row.name: row for row in session.scalars(select(LeaseRow).where(LeaseRow.name.in_(held)))}
                for name, since in held.items():
                    row = rows.get(name)
                    if row is None:
                        session.add(LeaseRow(name=name, holder=instance_name(), acquired_at=since, renewed_at=now))
                    else:
                        row.holder, row.acquired_at, row.renewed_at = instance_name(), since, now
            self._failing = False
        except (SQLAlchemyError, OSError) as exc:  # display only: never a reason to stop working
            if not self._failing:
                database = str(self.sessions.kw["bind"].url)
                why = state_write_failure(exc, database) or str(exc).splitlines()[0]
                log.warning("%s: could not record the lease for status: %s", ", ".join(sorted(held)), why)
            self._failing = True

    # census (PostgreSQL)
    def census(self, kind: str, now: datetime) -> Census | None:
        """Live instances and their holdings of `kind`, at most CENSUS_EVERY old; None when the
        database cannot tell (then nobody is handed over and every free lease is tried)."""
        with self._census_lock:  # apart from the status rows': a slow query delays no renewal
            cached = self._census.get(kind)
            if cached is not None and (now - cached[0]).total_seconds() < CENSUS_EVERY:
                return cached[1]
            found = self._read_census(kind)
            self._census[kind] = (now, found)
            return found

    def eager(self, kind: str, now: datetime) -> bool | None:
        """Whether to try free leases of `kind` at every poll; None when there is nobody to
        spread with (alone, or no census): then every free lease is tried, none paused."""
        census = self.census(kind, now)
        with self._lock:
            if census is None or self.id is None or len(census.instances | {self.id}) < 2:
                return None
            census = census.counting(self.id, self._holding(kind))
            return eager(census, self.id, self._count(kind, self._wanted))

    def hand_over(self, name: str, now: datetime) -> str | None:
        """Why `name` goes to another instance now (None: it stays). One that goes is no longer
        counted as ours from here, so loops deciding at once never all go on one count."""
        kind = kind_of(name)
        census = self.census(kind, now)
        with self._lock:
            if census is None or self.id is None or name not in self._held:
                return None
            census = census.counting(self.id, self._holding(kind))
            wanted = self._count(kind, self._wanted)
            if not hand_over_due(census, self.id, wanted):
                return None
            self._held.pop(name)
            return describe_share(census, self.id, wanted)

    def _holding(self, kind: str) -> int:
        return self._count(kind, self._held)

    @staticmethod
    def _count(kind: str, names) -> int:
        return sum(1 for name in names if kind_of(name) == kind)

    def _read_census(self, kind: str) -> Census | None:
        conn = self._connect()
        if conn is None:
            return None
        space = holding_space(kind)
        try:
            rows = conn.execute(text(
                "SELECT classid::int8, objid::int8, count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND objsubid = 2 AND granted AND classid::int8 IN (:instances, :space) "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "GROUP BY 1, 2"), {"instances": INSTANCE_SPACE, "space": space}).all()
        except SQLAlchemyError as exc:
            log.debug("cannot count the instances: %s", exc)
            self._disconnect()
            return None
        return Census(frozenset(who for where, who, _ in rows if where == INSTANCE_SPACE),
                      {who: n for where, who, n in rows if where == space})

    def _connect(self) -> Connection | None:
        """Our connection, holding our instance lock (taken again if it was lost); None on
        SQLite or while the database cannot be reached."""
        if self._conn is not None or self._engine is None:
            return self._conn
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            log.debug("cannot reach the database to count instances: %s", exc)
            return None
        try:
            for _ in range(8):  # a random key; another instance with the same one is a retry
                key = random.randint(1, 2**31 - 1)
                if conn.scalar(text("SELECT pg_try_advisory_lock(:space, :key)"),
                               {"space": INSTANCE_SPACE, "key": key}):
                    self._conn, self.id = conn, key
                    return conn
        except SQLAlchemyError as exc:
            log.debug("cannot take the instance lock: %s", exc)
        conn.close()
        return None

    def close(self) -> None:
        """End the instance lock: this instance is no longer counted."""
        with self._census_lock:
            self._disconnect()

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except SQLAlchemyError:
                pass
        self._conn, self.id = None, None


_INSTANCES: dict[str, Instance] = {}
_INSTANCES_LOCK = threading.Lock()


def instance_for(url: str, sessions: sessionmaker[Session]) -> Instance:
    """The one Instance of this process for the database at `url`."""
    with _INSTANCES_LOCK:
        if url not in _INSTANCES:
            server = make_url(url).get_backend_name() == "postgresql"
            _INSTANCES[url] = Instance(sessions, url if server else None)
        return _INSTANCES[url]


# -- the lease

class Lease:
    """acquire() (non-blocking) -> held() before each round -> release(). Not thread-safe:
    one per mailbox loop, used from that loop's thread."""

    def __init__(self, name: str, sessions: sessionmaker[Session], clock=utcnow,
                 instance: Instance | None = None) -> None:
        self.name, self.sessions, self.clock = name, sessions, clock
        self.instance = instance or Instance(sessions, None)
        self.instance.want(name)
        self._since: datetime | None = None

    # -- what the lock is (per store)
    def _try_lock(self) -> bool:
        raise NotImplementedError

    def _lock_alive(self) -> bool:
        raise NotImplementedError

    def _unlock(self) -> None:
        raise NotImplementedError

    # -- spreading (PostgreSQL only)
    def _may_try(self) -> bool:
        return True

    def _hand_over_due(self) -> bool:
        return False

    # -- the protocol
    def acquire(self) -> bool:
        if self._since is not None:
            return self.held()
        if not self._may_try() or not self._try_lock():
            return False
        self._since = self.clock()
        self.instance.show(self.name, self._since, self._since)
        return True

    def held(self, clean: bool = False) -> bool:
        """True while the lock is ours; False once it is lost (the caller stops working) or,
        when the caller is at a `clean` point (nothing in flight, everything recorded), handed
        over to an instance with fewer."""
        if self._since is None:
            return False
        if not self._lock_alive():
            log.error("%s: lease lost (database connection gone); stopping work on it", self.name)
            self._since = None
            self.instance.hide(self.name)
            self._unlock()
            return False
        if clean and self._hand_over_due():
            self.release()
            return False
        self.instance.renew_if_due(self.clock())
        return True

    def release(self) -> None:
        if self._since is not None:
            self._since = None
            self.instance.hide(self.name)
        self._unlock()

    def holder(self) -> str | None:
        """Who the table says holds it (for the "waiting" log line)."""
        with self.sessions() as session:
            row = session.get(LeaseRow, self.name)
            return f"{row.holder} since {row.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if row else None


class PostgresLease(Lease):
    def __init__(self, name: str, sessions: sessionmaker[Session], url: str, clock=utcnow,
                 instance: Instance | None = None) -> None:
        super().__init__(name, sessions, clock, instance)
        self._engine = create_engine(url, poolclass=NullPool, connect_args=KEEPALIVES)
        self._conn: Connection | None = None
        # advisory locks take a bigint; a stable hash of the name keeps instances in agreement
        self._key = int.from_bytes(hashlib.sha256(f"mailrouter {name}".encode()).digest()[:8], "big", signed=True)
        self._kind = kind_of(name)
        self._tried_at: datetime | None = None
        self._handed_at: datetime | None = None

    def _try_lock(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if not self._conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}):
                return False
            if self.instance.id is not None:  # counted as ours in the census, gone with the connection
                self._conn.scalar(text("SELECT pg_try_advisory_lock_shared(:space, :me)"),
                                  {"space": holding_space(self._kind), "me": self.instance.id})
            return True
        except SQLAlchemyError as exc:
            log.warning("%s: cannot reach the database for the lease: %s", self.name, exc)
            self._drop()
            return False

    def _may_try(self) -> bool:
        now = self.clock()
        first = self.instance.eager(self._kind, now)
        if first is None:
            return True
        if self._handed_at is not None and (now - self._handed_at).total_seconds() < HAND_BACK_AFTER:
            return False
        if first:
            return True
        if self._tried_at is None or (now - self._tried_at).total_seconds() >= AT_SHARE_TRY:
            self._tried_at = now
            return True
        return False

    def _hand_over_due(self) -> bool:
        now = self.clock()
        why = self.instance.hand_over(self.name, now)
        if why is None:
            return False
        log.info("%s: handed over to balance instances (%s)", self.name, why)
        self._handed_at = now
        return True

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
        self._drop()  # closing also drops the shared lock that counted it as ours

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None


class FileLease(Lease):
    def __init__(self, name: str, sessions: sessionmaker[Session], path: Path, clock=utcnow,
                 instance: Instance | None = None) -> None:
        super().__init__(name, sessions, clock, instance)
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

    def held(self, clean: bool = False) -> bool:
        return True

    def release(self) -> None:
        pass


def lease_for(name: str, url: str, sessions: sessionmaker[Session], clock=utcnow) -> Lease:
    """The lease of `name` ("mailbox sales") for the database at `url`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return PostgresLease(name, sessions, url, clock, instance_for(url, sessions))
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return FileLease(name, sessions, lock_path(parsed.database, name), clock, instance_for(url, sessions))
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
