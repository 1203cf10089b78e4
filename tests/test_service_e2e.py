"""The daemon as a service: SIGTERM mid-backlog, SIGHUP with a broken rule file, metrics."""
from __future__ import annotations

import shutil
import signal
import socket
import time
import urllib.request
from collections import Counter

import pytest

from mailrouter.config.load import load_config
from mailrouter.commands.demo import deliver_samples, wait_until_filed, write_testbed_config
from mailrouter.testing.samples import demo_samples
from mailrouter.store import FILED, MessageRow
from tests.factories import ROOT
from tests.mailcheck import (backlog_in_progress, count_rows, forwards_by_original, parsed,
                             restart_and_finish, start_daemon_process)

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_during_a_backlog_stops_cleanly_and_a_restart_finishes_it(bed, tmp_path):
    # 1,000: with the parser child kept warm, 400 were all in flight (and finished) by the stop
    config, config_path, log, first, samples = backlog_in_progress(bed, tmp_path, 1000)
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0, log.read_text()
    assert "received SIGTERM, stopping" in log.read_text()
    assert count_rows(config, MessageRow.state == FILED) < len(samples), "finished before SIGTERM"

    restart_and_finish(config, config_path, log, len(samples), timeout=120)
    counts = Counter({mid: len(v) for mid, v in forwards_by_original(bed, config).items()})
    assert all(counts[str(parsed(s.raw)["Message-ID"])] == 1 for s in samples), counts.most_common(2)



def test_sigusr1_writes_every_threads_stack_to_the_log_and_the_daemon_goes_on(bed, tmp_path):
    """Where a daemon that stopped logging waits: `systemctl kill --kill-whom=main -s USR1`."""
    config_path = write_testbed_config(ROOT / "config.toml", bed, tmp_path)
    config = load_config(config_path)
    log = tmp_path / "daemon.log"
    daemon = start_daemon_process(config_path, log)
    try:
        samples = demo_samples()[:2]
        deliver_samples(bed, samples[:1])
        assert wait_until_filed(config, 1, timeout=60), log.read_text()
        daemon.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while "Current thread" not in log.read_text() and "Thread 0x" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        time.sleep(0.5)  # the rest of the dump
        dump = log.read_text()
        assert "mailrouter/runtime/mailbox.py" in dump  # a mailbox loop's stack, by file and line
        assert "mailrouter/runtime/daemon.py" in dump  # and the main loop's
        deliver_samples(bed, samples[1:2])  # still routing
        assert wait_until_filed(config, 2, timeout=60), log.read_text()[-3000:]
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0

BROKEN_RULES = {
    "unknown-rep": ('[[rule]]\nname = "broken"\nrep = "nobody"\n'.encode(),
                    "50-routing.toml: rule 'broken': rep: unknown rep 'nobody'"),
    # before: UnicodeDecodeError out of reload killed the daemon (issue 13)
    "gbk": ('# 规则\n[[rule]]\nname = "broken"\nrep = "zhang"\n'.encode("gbk"),
            "50-routing.toml: line 1: is not UTF-8"),
}


@pytest.mark.parametrize("broken", sorted(BROKEN_RULES))
def test_sighup_with_a_broken_rule_file_keeps_the_old_rules(bed, tmp_path, broken):
    workdir = tmp_path / "work"
    workdir.mkdir()
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    config_path = write_testbed_config(ROOT / "config.toml", bed, workdir, rules_dir=str(rules))
    config = load_config(config_path)
    log = tmp_path / "daemon.log"
    daemon = start_daemon_process(config_path, log)
    try:
        german = demo_samples()[0]
        deliver_samples(bed, [german])
        assert wait_until_filed(config, 1, timeout=60), log.read_text()
        content, expected = BROKEN_RULES[broken]
        (rules / "50-routing.toml").write_bytes(content)
        daemon.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "reload refused" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert expected in log.read_text()
        # still routing, by the old rules (the broken file would route nothing to zhang)
        russian = next(s for s in demo_samples() if s.label == "Russian PCB buyer")
        deliver_samples(bed, [russian])
        assert wait_until_filed(config, 2, timeout=60), log.read_text()
        (rep, _fwd), = forwards_by_original(bed, config)[str(parsed(russian.raw)["Message-ID"])]
        assert rep == "chen"
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def test_metrics_endpoint_counts_messages_as_they_are_routed(bed, tmp_path):
    port = free_port()
    config_path = write_testbed_config(ROOT / "config.toml", bed, tmp_path,
                                       {"metrics": {"enabled": True, "port": port}})
    config = load_config(config_path)
    log = tmp_path / "daemon.log"
    daemon = start_daemon_process(config_path, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                before = scrape(port)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert metric(before, 'mailrouter_messages_total{outcome="routed"}') == 0
        samples = demo_samples()[:5]
        deliver_samples(bed, samples)
        assert wait_until_filed(config, 5, timeout=60), log.read_text()
        after = scrape(port)
        assert metric(after, 'mailrouter_messages_total{outcome="routed"}') == 5
        assert metric(after, "mailrouter_forward_latency_seconds_count") == 5
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
