"""Helpers for integration tests: run the daemon on the test bed, read results as a mail client."""
from __future__ import annotations

import contextlib
import email
import signal
import socket
import subprocess
import sys
import threading
import time
import email.policy
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from mailrouter.config.load import Config, load_config
from mailrouter.act.admit import Clock
from mailrouter.store import FILED, MessageRow, open_database, utcnow
from mailrouter.runtime.daemon import Daemon
from mailrouter.commands.demo import deliver_samples, wait_until_filed, write_testbed_config
from mailrouter.intake.fingerprint import content_key
from mailrouter.testing.samples import Sample, bulk_samples
from mailrouter.testing.testbed import TestBed, relay
from tests.factories import ROOT


def configure(bed: TestBed, workdir: Path, overrides: dict | None = None, **daemon) -> Config:
    return load_config(write_testbed_config(ROOT / "config.toml", bed, workdir, overrides, **daemon))


def route_all(bed: TestBed, config: Config, samples: list[Sample], clock: Clock = utcnow) -> None:
    """Deliver, run the daemon until every message (old and new) is filed, stop it."""
    with open_database(config.database)() as session:
        before = session.scalar(select(func.count()).select_from(MessageRow))
    copies = deliver_samples(bed, samples)
    daemon = Daemon(config, clock)
    daemon.start()
    try:
        assert wait_until_filed(config, before + copies, timeout=90), "not every message was filed"
    finally:
        daemon.stop()


def run_until(config: Config, predicate, what: str, timeout: float = 60.0, clock: Clock = utcnow) -> None:
    """Run the daemon until `predicate()` holds (polled), then stop it."""
    daemon = Daemon(config, clock)
    daemon.start()
    try:
        wait_for(predicate, what, timeout)
    finally:
        daemon.stop()


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def attached_original(forward: email.message.EmailMessage) -> bytes:
    part = next(p for p in forward.walk() if p.get_content_type() == "message/rfc822")
    return part.get_payload(0).as_bytes() if not isinstance(part.get_payload(), bytes) else part.get_payload()


def forwards_by_original(bed: TestBed, config: Config) -> dict[str, list[tuple[str, email.message.EmailMessage]]]:
    """Original Message-ID -> [(rep id, forward)] across every rep's INBOX."""
    found: dict[str, list] = {}
    for rep in config.reps.values():
        for raw in bed.fetch_all(rep.email):
            fwd = parsed(raw)
            found.setdefault(str(fwd["In-Reply-To"]), []).append((rep.id, fwd))
    return found


def shared_copies(bed: TestBed, user: str) -> dict[str, list[bytes]]:
    """Folder -> raw messages in one shared mailbox (INBOX included)."""
    return {folder: bed.fetch_all(user, folder) for folder in bed.folders(user)}


def folder_of(copies: dict[str, list[bytes]], sample: Sample) -> list[str]:
    key = content_key(sample.raw)
    return [folder for folder, raws in copies.items() for raw in raws if content_key(raw) == key]


def server_folder(bed: TestBed, user: str, logical: str) -> str:
    names = bed.folders(user)
    for sep in ("/", "."):
        candidate = logical.replace("/", sep)
        if candidate in names:
            return candidate
    raise AssertionError(f"{logical} not among {names}")




def start_daemon_process(config_path: Path, log: Path) -> subprocess.Popen:
    """The daemon as systemd runs it: `run.py -c CONFIG run` in its own process."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "-c", str(config_path), "run"],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def count_rows(config: Config, *where) -> int:
    with open_database(config.database)() as session:
        return session.scalar(select(func.count()).select_from(MessageRow).where(*where))


def restart_and_finish(config: Config, config_path: Path, log: Path, expected: int, timeout: float = 120) -> None:
    """Start the daemon process again, wait until `expected` messages are filed, stop it with
    SIGTERM (which must exit 0)."""
    process = start_daemon_process(config_path, log)
    try:
        assert wait_until_filed(config, expected, timeout=timeout), log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def backlog_in_progress(bed: TestBed, workdir: Path, count: int) -> tuple[Config, Path, Path, subprocess.Popen, list[Sample]]:
    """A daemon process working through `count` bulk inquiries, returned once it has filed some."""
    samples = bulk_samples(count)
    config_path = write_testbed_config(ROOT / "config.toml", bed, workdir)
    config = load_config(config_path)
    deliver_samples(bed, samples)
    log = workdir / "daemon.log"
    process = start_daemon_process(config_path, log)
    deadline = time.monotonic() + 60
    while count_rows(config, MessageRow.state == FILED) < 10:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the daemon made no progress:\n" + log.read_text())
        time.sleep(0.01)
    return config, config_path, log, process, samples


class MovableClock:
    """An injectable clock that tests move instead of sleeping."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def wait_for(predicate, what: str, timeout: float = 30.0):
    """Poll `predicate` until it returns something true; that value, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class FaultyServer:
    """A loopback stand-in for a server that fails, in front of the bed's real one (Dovecot,
    SMTP): bound but not listening until `come_up()` (connections refused, and no other
    process can take the port meanwhile); then a byte-for-byte proxy to `target_port`, until
    `hang()` cuts every session and from then on accepts connections and never says a word
    (a dead server behind a live port; those connections are kept in `hung`)."""

    def __init__(self, target_port: int, listening: bool = True) -> None:
        self.target_port = target_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hanging = threading.Event()
        self.hung: list[socket.socket] = []
        self._open: list[socket.socket] = []
        if listening:
            self.come_up()

    def come_up(self) -> None:
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def hang(self) -> None:
        self.hanging.set()
        for s in self._open:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.sock.close()
        for s in self._open + self.hung:
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.hanging.is_set():
                self.hung.append(conn)
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._open += [conn, upstream]
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=relay, args=(src, dst), daemon=True).start()
