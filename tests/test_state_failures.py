"""The pure parts of durability: what a failed state write says, the accepted log's memory,
and the reconnect backoff policy."""
from __future__ import annotations

import errno
import os
import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from mailrouter.intake.health import Link
from mailrouter.act.outbox import AcceptedLog
from mailrouter.intake.imap import Backoff
from mailrouter.store import state_write_failure


def sqlite_error(message: str, code: int) -> OperationalError:
    orig = sqlite3.OperationalError(message)
    orig.sqlite_errorcode = code
    return OperationalError("COMMIT", {}, orig)


def test_a_full_spool_names_the_file_the_errno_text_and_what_to_free():
    line = state_write_failure(OSError(errno.ENOSPC, "No space left on device", "/var/lib/mailrouter/spool/accepted-sales.log"),
                               "sqlite:////var/lib/mailrouter/mailrouter.db")
    assert line == ("cannot write /var/lib/mailrouter/spool/accepted-sales.log: No space left on device; "
                    "free space on that filesystem")


@pytest.mark.parametrize("message, code, advice", [
    ("database or disk is full", 13, "free space"),
    ("attempt to write a readonly database", 8, "writable"),
    ("disk I/O error", 778, "check the disk"),  # SQLITE_IOERR_WRITE: the primary code is the low byte
    ("locking protocol", 15, "check the disk"),  # WAL locking on a filesystem the kernel aborted
])
def test_a_database_that_refuses_a_write_is_named_with_sqlites_reason(message, code, advice):
    line = state_write_failure(sqlite_error(message, code), "sqlite:////var/lib/mailrouter/mailrouter.db")
    assert line.startswith(f"cannot write the database /var/lib/mailrouter/mailrouter.db: {message} (")
    assert advice in line


def test_a_postgresql_disk_full_hides_the_password():
    orig = Exception("could not extend file: No space left on device")
    orig.sqlstate = "53100"
    line = state_write_failure(OperationalError("INSERT", {}, orig), "postgresql+psycopg://mr:secret@db/mailrouter")
    assert "secret" not in line and "db/mailrouter" in line and "free space" in line


@pytest.mark.parametrize("exc", [
    OSError(errno.ECONNREFUSED, "Connection refused"),
    sqlite_error("no such table: messages", 1),
    ValueError("a bug"),
])
def test_anything_but_a_disk_refusing_writes_is_not_explained_away(exc):
    assert state_write_failure(exc, "sqlite:////x.db") is None


def test_an_accepted_id_the_disk_refused_is_still_known_and_written_once_it_can_be(tmp_path, monkeypatch):
    log = AcceptedLog(tmp_path / "spool" / "accepted-sales.log")
    log.add(7)
    assert (tmp_path / "spool" / "accepted-sales.log").read_text() == "7\n"

    def full(fd):  # fsync(2) reports a write the disk could not take; it names no file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    with pytest.raises(OSError) as refused:
        log.add(8)
    assert refused.value.filename == str(log.path)  # named for the one log line
    assert AcceptedLog(log.path).ids() == {7, 8}  # another instance (after a reload) knows it too
    monkeypatch.undo()

    log.write_unwritten()
    assert set(log.path.read_text().split()) == {"7", "8"}  # "8" may be there twice: written, not fsynced
    log.clear({7, 8})
    assert AcceptedLog(log.path).ids() == set()


def test_backoff_doubles_while_sessions_fail_and_resets_after_a_completed_round():
    backoff = Backoff()
    assert [backoff.failed() for _ in range(4)] == [1, 2, 4, 8]
    backoff.after_session(completed_round=False, seconds=3)  # connected, failed before a round
    assert backoff.failed() == 16
    backoff.after_session(completed_round=True, seconds=3)  # a short session that did its work
    assert backoff.failed() == 1


def test_throttling_is_forgiven_only_after_a_long_session():
    backoff = Backoff()
    assert [backoff.throttled() for _ in range(2)] == [60, 120]
    backoff.after_session(completed_round=True, seconds=10)
    assert backoff.throttled() == 240
    backoff.after_session(completed_round=True, seconds=301)
    assert backoff.throttled() == 60


def test_a_disk_that_refuses_writes_is_tried_again_within_a_minute():
    backoff = Backoff()
    assert [backoff.disk() for _ in range(6)] == [5, 10, 20, 40, 60, 60]
    backoff.after_session(completed_round=True, seconds=1)
    assert backoff.disk() == 5


def test_one_disk_outage_is_one_error_line_even_when_its_face_changes(caplog, monkeypatch):
    """A failing disk gives EIO on the database, then EROFS on the spool: one line says what to do.
    After a round completes the outage is over, and the next one is told again."""
    import logging
    import threading

    from mailrouter.intake import imap

    monkeypatch.setattr(imap.Backoff, "disk", lambda self: 0.0)
    troubles = iter(["cannot write the database x.db: disk I/O error; check the disk",
                     "cannot write spool/accepted-sales.log: Read-only file system; make that filesystem writable again",
                     "cannot write the database x.db: disk I/O error; check the disk",
                     "progress",
                     "cannot write spool/accepted-sales.log: No space left on device; free space on that filesystem",
                     "stop"])
    rounds = [0]
    stop = threading.Event()

    def serve():
        what = next(troubles)
        if what == "progress":
            rounds[0] += 1
            raise OSError("again")
        if what == "stop":
            stop.set()
            return
        raise OSError(what)

    def explain(exc):
        return None if str(exc) == "again" else str(exc)

    with caplog.at_level(logging.DEBUG, logger=imap.log.name):
        imap.keep_serving("sales", serve, stop, explain=explain, progress=lambda: rounds[0], link=Link("mailbox sales"))
    told = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "forwarded twice" in r.getMessage()]
    assert len(told) == 2, told
    assert "disk I/O error" in told[0] and "No space left" in told[1]


def test_a_database_file_replaced_under_the_daemon_is_refused_not_recreated(tmp_path):
    """An unmounted state disk leaves an empty mount point: SQLite would make a new, empty
    database there ("no such table") and what the daemon writes would vanish on remount."""
    import errno as errnos

    from sqlalchemy import text

    from mailrouter.store import open_database

    db = tmp_path / "state" / "mailrouter.db"
    db.parent.mkdir()
    sessions = open_database(f"sqlite:///{db}")
    with sessions() as session:
        session.execute(text("SELECT 1"))
    moved = tmp_path / "elsewhere"
    db.parent.rename(moved)
    db.parent.mkdir()  # the mount point, as the unmount leaves it
    with pytest.raises(OSError) as raised, sessions() as session:
        session.execute(text("SELECT 1"))
    assert raised.value.errno == errnos.ESTALE
    assert not db.exists(), "no empty database is made in its place"
    line = state_write_failure(raised.value, f"sqlite:///{db}")
    assert line.startswith(f"cannot write {db}:") and "mount it back" in line


def test_an_accepted_log_whose_folder_was_unmounted_keeps_its_ids_and_refuses_the_mount_point(tmp_path):
    import errno as errnos

    spool = tmp_path / "spool"
    log = AcceptedLog(spool / "accepted-sales.log")
    log.add(7)
    spool.rename(tmp_path / "hidden")  # the disk unmounted: its files out of sight
    spool.mkdir()
    with pytest.raises(OSError) as raised:
        log.add(8)
    assert raised.value.errno == errnos.ESTALE
    with pytest.raises(OSError):
        log.ids()  # "nothing accepted" read from the mount point would send 7 again
    with pytest.raises(OSError):
        log.write_unwritten()
    assert not (spool / "accepted-sales.log").exists()
    spool.rmdir()
    (tmp_path / "hidden").rename(spool)  # mounted back
    log.write_unwritten()
    assert log.ids() == {7, 8}


def in_a_child(body) -> str:
    """Run `body` in a forked child and return what it raised ('' if nothing). RLIMIT_FSIZE is
    per process: set in the test run itself it also cut pytest's own output once its log file
    was past the limit (a CI run ended mid-line, exit 1)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        os.close(read)
        try:
            body()
            failure = b""
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            failure = (repr(exc) or "failed").encode()
        os.write(write, failure)
        os._exit(1 if failure else 0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    _pid, status = os.waitpid(pid, 0)
    return said or ("" if os.waitstatus_to_exitcode(status) == 0 else f"child ended with {status}")


def test_an_append_the_disk_takes_only_part_of_is_never_a_lost_or_a_wrong_id(tmp_path):
    # issue 13: a full disk took "11" of "1185\n"; add() returned as if durable, so 1185 was
    # neither in the log nor held in memory, and was forwarded again once the disk was freed
    import resource
    import signal

    log = AcceptedLog(tmp_path / "spool" / "accepted-sales.log")
    log.add(1184)
    size = log.path.stat().st_size

    def on_a_disk_that_fills() -> None:
        # the kernel writes a file only up to RLIMIT_FSIZE and returns a short count, as write(2)
        # does on a disk that fills mid-append (SIGXFSZ ignored: EFBIG past it, not a kill)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 2, hard))
        with pytest.raises(OSError):
            log.add(1185)
        assert log.ids() == {1184, 1185}  # held in memory: never sent again by this process
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))
        log.add(1186)
        assert log.ids() == {1184, 1185, 1186}

    assert in_a_child(on_a_disk_that_fills) == ""
    assert log.path.read_text().split() == ["1184", "1186"]  # no torn id ("11" or "111186") on disk


def test_a_torn_last_line_left_by_a_crash_is_not_read_as_an_id_and_is_cut_before_the_next(tmp_path):
    log = AcceptedLog(tmp_path / "spool" / "accepted-sales.log")
    log.add(1184)
    with log.path.open("ab") as torn:  # a crash after "11" of "1185\n"
        torn.write(b"11")
    assert log.ids() == {1184}  # not 11: that forward was never sent
    log.add(1186)
    assert log.path.read_text().split() == ["1184", "1186"]
