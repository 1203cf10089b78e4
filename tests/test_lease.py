"""Issue 17 item 2: one instance per mailbox, on SQLite (file lock) and a real PostgreSQL
(advisory lock): exclusive while held, taken over at once when the holder is killed, lost (and
noticed) when the holder's database connection goes."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import event, select, text

from mailrouter.lease import RENEW_EVERY, PostgresLease, instance_name, lease_for
from mailrouter.store import LeaseRow, open_database

HOLD = """
import sys, time
from mailrouter.store import open_database
from mailrouter.lease import lease_for
url = sys.argv[1]
lease = lease_for("mailbox sales", url, open_database(url))
assert lease.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_lease_is_held_by_one_holder_at_a_time(database_url: str) -> None:
    sessions = open_database(database_url)
    first, second = (lease_for("mailbox sales", database_url, sessions) for _ in range(2))
    other = lease_for("mailbox info", database_url, sessions)
    assert first.acquire()
    assert not second.acquire()
    assert other.acquire()  # another mailbox is another lease
    assert first.held() and first.acquire()  # acquiring what one holds is holding it
    with sessions() as session:
        row = session.get(LeaseRow, "mailbox sales")
        assert row is not None and row.holder == instance_name()
    first.release()
    assert not first.held()
    assert second.acquire()
    second.release()
    other.release()
    with sessions() as session:
        assert session.scalars(select(LeaseRow)).all() == []


def test_a_killed_holder_s_lease_is_taken_over_at_once(database_url: str) -> None:
    sessions = open_database(database_url)
    child = subprocess.Popen([sys.executable, "-c", HOLD, database_url], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        mine = lease_for("mailbox sales", database_url, sessions)
        assert not mine.acquire()
        assert mine.holder() is not None and f":{child.pid} since" in mine.holder()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 10
        while not mine.acquire():  # the server (or the kernel) drops a dead holder's lock
            assert time.monotonic() < deadline, "the lease of a killed holder was not released"
            time.sleep(0.1)
        assert mine.held()
        with sessions() as session:
            assert session.get(LeaseRow, "mailbox sales").holder == instance_name()
        mine.release()
    finally:
        child.kill()
        child.wait(10)
        child.stdout.close()


def test_a_holder_whose_connection_is_cut_loses_the_lease_and_says_so(postgres, caplog) -> None:
    url = postgres.new_database()
    sessions = open_database(url)
    lease = lease_for("mailbox sales", url, sessions)
    assert isinstance(lease, PostgresLease) and lease.acquire()
    with sessions.begin() as session:  # as a failover, a network cut or an admin would
        session.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks "
                             "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"))
    assert not lease.held()
    assert "mailbox sales: lease lost" in caplog.text
    rival = lease_for("mailbox sales", url, sessions)
    assert rival.acquire()  # free for another instance
    assert not lease.acquire()  # and the old holder does not get it back meanwhile
    rival.release()
    assert lease.acquire()
    lease.release()


def test_a_sqlite_lock_file_deleted_by_hand_is_a_lost_lease(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    url = f"sqlite:///{tmp_path / 'state.db'}"
    sessions = open_database(url)
    lease = lease_for("mailbox sales", url, sessions)
    assert lease.acquire() and lease.held()
    # off the state disk (a failing disk must be unmountable), named after the database
    assert list(tmp_path.glob("*.lock")) == []
    lock = next((tmp_path / "run").glob("mailrouter-*-mailbox_sales.lock"))
    assert oct(lock.stat().st_mode & 0o777) == "0o600"
    lock.unlink()
    assert not lease.held()


def test_a_lease_on_a_state_disk_unmounted_under_it_is_still_held_and_says_why_once(tmp_path, monkeypatch, caplog) -> None:
    """The status row is display only: a database that vanished with its disk is one clear line."""
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    state = tmp_path / "state"
    state.mkdir()
    url = f"sqlite:///{state / 'state.db'}"
    sessions = open_database(url)
    clock = [datetime(2026, 12, 4, tzinfo=timezone.utc)]
    lease = lease_for("mailbox sales", url, sessions, lambda: clock[0])
    assert lease.acquire()
    state.rename(tmp_path / "hidden")
    state.mkdir()  # the mount point the unmount leaves
    for minutes in (5, 10):
        clock[0] += timedelta(minutes=minutes)
        assert lease.held()
    lines = [r.getMessage() for r in caplog.records if "could not record the lease" in r.getMessage()]
    assert len(lines) == 1 and "mount it back" in lines[0], lines


def test_the_server_drops_a_vanished_holder_within_seconds_not_hours(postgres) -> None:
    """A holder that loses power never closes its connection: only the server's own keepalives
    end it (and release its lock); PostgreSQL's default leaves that to the kernel's 2 hours."""
    url = postgres.new_database()
    lease = lease_for("mailbox sales", url, open_database(url))
    assert isinstance(lease, PostgresLease) and lease.acquire()
    try:
        settings = {name: lease._conn.exec_driver_sql(f"SHOW {name}").scalar()
                    for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")}
    finally:
        lease.release()
    assert settings == {"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "3"}


def test_one_transaction_renews_every_held_lease_s_status_row(database_url: str) -> None:
    """Issue 17 "lease display cost": the rows `status` reads are renewed by one writer per
    process, one commit per renewal period for all the leases it holds, not one per lease."""
    sessions = open_database(database_url)
    clock = [datetime(2026, 12, 4, 22, 0, tzinfo=timezone.utc)]
    names = [f"mailbox box{i}" for i in range(6)]
    leases = [lease_for(name, database_url, sessions, lambda: clock[0]) for name in names]
    assert all(lease.acquire() for lease in leases)
    commits: list[object] = []
    listen = (sessions.kw["bind"], "commit", lambda conn: commits.append(conn))
    event.listen(*listen)
    try:
        for period in (1, 2):
            clock[0] += timedelta(seconds=RENEW_EVERY)
            for _ in range(3):  # every loop checks its lease before each round
                assert all(lease.held() for lease in leases)
            assert len(commits) == period, f"{len(commits)} commits for {len(leases)} leases in {period} period(s)"
    finally:
        event.remove(*listen)
    with sessions() as session:
        rows = session.scalars(select(LeaseRow)).all()
        assert {row.name for row in rows} == set(names)
        assert {row.renewed_at.replace(tzinfo=timezone.utc) for row in rows} == {clock[0]}
        assert {row.holder for row in rows} == {instance_name()}
    for lease in leases:
        lease.release()
    with sessions() as session:
        assert session.scalars(select(LeaseRow)).all() == []


def test_a_renewal_under_way_when_a_lease_is_released_does_not_write_its_row_back(tmp_path, monkeypatch) -> None:
    """The one writer renews every held lease's row from another loop's thread: a release in
    the middle of that renewal must not be undone by it (a row naming a holder long gone)."""
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'state.db'}"
    sessions = open_database(url)
    clock = [datetime(2026, 12, 4, 22, 0, tzinfo=timezone.utc)]
    going, staying = (lease_for(f"mailbox {name}", url, sessions, lambda: clock[0]) for name in ("sales", "info"))
    assert going.acquire() and staying.acquire()
    instance = staying.instance
    write, releases = instance._write, []

    def release_meanwhile(held, now):  # the other loop releases while this renewal runs
        if not releases:
            releases.append(threading.Thread(target=going.release))
            releases[0].start()
            releases[0].join(0.5)  # done at once unless it waits for the renewal's turn
        write(held, now)

    monkeypatch.setattr(instance, "_write", release_meanwhile)
    clock[0] += timedelta(seconds=RENEW_EVERY)
    assert staying.held()
    releases[0].join(10)
    with sessions() as session:
        assert [row.name for row in session.scalars(select(LeaseRow))] == ["mailbox info"]
    staying.release()
