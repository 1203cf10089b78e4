"""Issue 17 item 4: many mailboxes in one process. daemon.max_connections_per_server below the
mailbox count must hold (never more sessions than that to the server) without starving any
mailbox; a mailbox whose server accepts and then hangs delays no other mailbox."""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from mailrouter.commands.demo import write_testbed_config
from mailrouter.config.load import load_config
from mailrouter.store import FILED, MessageRow
from mailrouter.testing.samples import bulk_samples
from tests.mailcheck import ROOT, FaultyServer, count_rows, start_daemon_process, wait_for

pytestmark = pytest.mark.integration

EXTRA = tuple(f"box{i}@example.com" for i in range(1, 5))


def sessions_to(pid: int, port: int) -> int:
    """Established TCP connections of process `pid` to loopback `port` (its sockets' inodes
    matched against /proc/net/tcp): what the server sees, whatever the daemon believes."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == port and fields[3] == "01" and fields[9] in inodes:
            count += 1
    return count


def _mailboxes(addresses: list[str], base: dict) -> list[dict]:
    return [{**base, "name": a.split("@")[0], "address": a, "user": a, "display_name": a.split("@")[0]}
            for a in addresses]


def _config(bed, tmp_path, limit: int, extra_mailboxes: list[dict] = ()) -> Path:
    import tomllib

    import tomli_w
    path = write_testbed_config(ROOT / "config.toml", bed, tmp_path, max_connections_per_server=limit)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    base = {k: v for k, v in data["mailbox"][0].items() if k not in ("name", "address", "user", "display_name")}
    base["poll_interval"] = 30  # the safety net stays far away: only IDLE or the rotation can find mail
    data["mailbox"] = _mailboxes(["sales@example.com", "info@example.com", *EXTRA], base) + list(extra_mailboxes)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def _stop(process) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def test_every_mailbox_is_served_within_the_connection_limit(make_bed, tmp_path):
    bed = make_bed(extra_addresses=EXTRA)
    path = _config(bed, tmp_path, limit=2)
    config = load_config(path)
    log = tmp_path / "daemon.log"
    process = start_daemon_process(path, log)
    most = 0
    stop_counting = threading.Event()

    def count() -> None:  # sampled all along, not only at the end
        nonlocal most
        while not stop_counting.is_set() and process.poll() is None:
            most = max(most, sessions_to(process.pid, bed.imap_port))
            stop_counting.wait(0.05)

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    try:
        # each of the six mailboxes has been connected once: everything else arrives during IDLE
        wait_for(lambda: log.read_text().count(": connected to ") >= 6, "every mailbox connected once", 120)
        samples = [s for s in bulk_samples(12) if s.outcome == "routed"][:6]
        targets = ["sales@example.com", "info@example.com", *EXTRA]
        for sample, target in zip(samples, targets, strict=True):
            bed.deliver(target, sample.raw, mail_from=sample.envelope_from)
        # far below the 30 s safety-net poll times six: a starved mailbox never gets there
        wait_for(lambda: count_rows(config, MessageRow.state == FILED) >= 6, "all six mailboxes filed", 90)
    finally:
        stop_counting.set()
        counter.join(5)
        _stop(process)
    assert 0 < most <= 2, most
    assert "Traceback" not in log.read_text()


def test_a_server_that_dies_delays_no_other_mailbox(make_bed, tmp_path):
    bed = make_bed(extra_addresses=(*EXTRA, "dead@example.com"))
    dying = FaultyServer(bed.imap_port)
    try:
        import tomllib
        base = tomllib.loads(write_testbed_config(ROOT / "config.toml", bed, tmp_path).read_text())["mailbox"][0]
        # its own server (another port), so neither the connection limit nor a slot is shared
        doomed = {**base, "name": "dead", "address": "dead@example.com", "user": "dead@example.com",
                  "display_name": "Dead", "port": dying.port, "timeout": 120}
        path = _config(bed, tmp_path, limit=2, extra_mailboxes=[doomed])
        config = load_config(path)
        log = tmp_path / "daemon.log"
        process = start_daemon_process(path, log)
        try:
            wait_for(lambda: "dead: connected to" in log.read_text(), "the doomed mailbox connected", 120)
            dying.hang()
            wait_for(lambda: dying.hung, "the doomed mailbox reconnecting to a dead server", 60)
            samples = [s for s in bulk_samples(12) if s.outcome == "routed"][:6]
            for sample, target in zip(samples, ["sales@example.com", "info@example.com", *EXTRA], strict=True):
                bed.deliver(target, sample.raw, mail_from=sample.envelope_from)
            # the dead server's timeout is 120 s: all six filed well before it means nobody waited for it
            wait_for(lambda: count_rows(config, MessageRow.state == FILED) >= 6, "the live mailboxes filed", 90)
            assert process.poll() is None
        finally:
            _stop(process)
    finally:
        dying.close()
