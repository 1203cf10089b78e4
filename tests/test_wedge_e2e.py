"""Nothing wedges the daemon: two backlogs share the parser process, a stuck lane stops the
watchdog pings, a slow parse is cut off (issue 13 item 1, issue 14 item 2)."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mailrouter.commands.demo import deliver_samples, wait_until_filed, write_testbed_config
from mailrouter.config.load import load_config
from mailrouter.testing.samples import INFO, bulk_samples
from tests.factories import ROOT
from mailrouter.store import MessageRow
from tests.mailcheck import count_rows, forwards_by_original, parsed, start_daemon_process, wait_for

pytestmark = pytest.mark.integration


def stop_within(daemon: subprocess.Popen, seconds: float) -> int | None:
    """SIGTERM, then the exit status, or None (and SIGKILL) if it did not end in time."""
    daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(seconds)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        return None


def test_two_backlogs_with_the_default_parser_process_are_routed_and_sigterm_ends_it(bed, tmp_path):
    # before: sales and info each sent batches to the one parser child; a mailbox thread blocked
    # writing a batch while holding the lock the answer reader needed, the child blocked writing
    # an answer nobody read, and nothing moved again (SIGTERM hung in the parser's close)
    sales = bulk_samples(300)
    info = [replace(s, to=(INFO,)) for s in bulk_samples(300, start=5000)]
    config_path = write_testbed_config(ROOT / "config.toml", bed, tmp_path)
    config = load_config(config_path)
    assert config.parse_workers == 1, "the default configuration is the case that deadlocked"
    deliver_samples(bed, sales + info)
    log = tmp_path / "daemon.log"
    daemon = start_daemon_process(config_path, log)
    try:
        routed = wait_until_filed(config, len(sales) + len(info), timeout=180)
    finally:
        status = stop_within(daemon, 30)
    assert routed, log.read_text()[-3000:]
    assert status == 0, "SIGTERM did not stop the daemon within 30 s"
    counts = forwards_by_original(bed, config)
    assert all(str(parsed(s.raw)["Message-ID"]) in counts for s in sales + info)


class NotifyListener:
    """systemd's side of sd_notify: every datagram with the time it came."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mr-notify-"))  # socket paths: 108 bytes at most
        self.path = self.folder / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, str]] = []
        self._open = True
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while self._open:
            try:
                self.received.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                continue

    def pings(self, since: float = 0.0) -> list[float]:
        return [t for t, text in list(self.received) if text == "WATCHDOG=1" and t >= since]

    def close(self) -> None:
        self._open = False
        self._thread.join()
        self.sock.close()
        shutil.rmtree(self.folder)


def longest_gap(times: list[float]) -> float:
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def test_a_mailbox_stuck_in_one_step_stops_the_watchdog_pings_until_it_moves_again(bed, tmp_path, monkeypatch):
    listener = NotifyListener()
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")  # WatchdogSec=4: a ping every 2 s
    monkeypatch.setenv("MAILROUTER_TEST_STALL_PARSE", "Ref. 3")  # the parser child stalls on it
    samples = bulk_samples(6)
    config_path = write_testbed_config(ROOT / "config.toml", bed, tmp_path, parse_timeout=10)
    config = load_config(config_path)
    log = tmp_path / "daemon.log"
    daemon = start_daemon_process(config_path, log)
    try:
        wait_for(lambda: len(listener.pings()) >= 4, "pings from the idle daemon", timeout=60)
        assert longest_gap(listener.pings()) < 3.5  # healthy and idle: every 2 s
        delivered = time.monotonic()
        deliver_samples(bed, samples)
        assert wait_until_filed(config, len(samples), timeout=90), log.read_text()[-3000:]
        routed_at = time.monotonic()
        wait_for(lambda: len(listener.pings(routed_at)) >= 3, "pings once the mailbox moves again", timeout=30)
        status = stop_within(daemon, 30)
    finally:
        daemon.kill()
        daemon.wait()
        listener.close()
    text = log.read_text()
    assert status == 0
    # the sales lane sat 10 s on the stalled parse: no ping for more than WatchdogSec
    assert longest_gap(listener.pings(delivered)) > 4.5, listener.pings(delivered)
    assert "watchdog: not pinging, systemd will restart the service: sales stuck in one step for" in text
    assert "watchdog: every mailbox is moving again; pinging" in text
    assert "parse took longer than 10s (daemon.parse_timeout)" in text
    assert count_rows(config, MessageRow.folder == config.folders.quarantine) == 1
    assert len(forwards_by_original(bed, config)) == len(samples) - 1


def test_a_standby_instance_waiting_for_the_mailbox_lease_is_not_wedged(bed, tmp_path):
    # waiting for another instance's lease is waiting on purpose: the standby must keep pinging
    from mailrouter.runtime.daemon import Daemon
    from mailrouter.runtime.liveness import stuck_lanes
    from tests.mailcheck import configure
    config = configure(bed, tmp_path)
    active, standby = Daemon(config), Daemon(config)
    active.start()
    try:
        wait_for(lambda: all(w.rounds for w in active.workers), "the active instance's first rounds", timeout=60)
        standby.start()
        time.sleep(3)
        lanes = {w.mailbox.name: w.lane for w in standby.workers}
        assert all(w.rounds == 0 for w in standby.workers)  # it really is waiting for the lease
        assert stuck_lanes(lanes, 1.0) == {}
    finally:
        standby.stop()
        active.stop()
