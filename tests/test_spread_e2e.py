"""Issue 17 "instances spread mailboxes": three `run` processes on one PostgreSQL over ten shared
mailboxes converge to 4/3/3 (before: the first to start kept all ten); leases handed over while
a backlog is routed forward nothing twice; after a SIGKILL of one the other two cover all ten."""
from __future__ import annotations

import signal
import tomllib
from collections import Counter

import pytest
import tomli_w
from sqlalchemy import select

from mailrouter.commands.demo import write_testbed_config
from mailrouter.config.load import load_config
from mailrouter.store import FILED, LeaseRow, MessageRow, close_database, open_database
from mailrouter.testing.samples import bulk_samples
from tests.mailcheck import ROOT, count_rows, forwards_by_original, parsed, start_daemon_process, wait_for

pytestmark = pytest.mark.integration

EXTRA = tuple(f"box{i}@example.com" for i in range(1, 9))
SHARED = ("sales@example.com", "info@example.com", *EXTRA)


def ten_mailboxes(bed, tmp_path, url: str):
    path = write_testbed_config(ROOT / "config.toml", bed, tmp_path, database=url)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    base = {k: v for k, v in data["mailbox"][0].items() if k not in ("name", "address", "user", "display_name")}
    data["mailbox"] = [{**base, "name": a.split("@")[0], "address": a, "user": a, "display_name": a.split("@")[0]}
                       for a in SHARED]
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path, load_config(path)


def holders(url: str) -> Counter[str]:
    """Mailbox leases per holder ("host:pid"), as `status` shows them."""
    with open_database(url)() as session:
        return Counter(row.holder for row in session.scalars(select(LeaseRow).where(LeaseRow.name.like("mailbox %"))))


def pid_of(holder: str) -> int:
    return int(holder.rsplit(":", 1)[1])


def test_three_instances_spread_ten_mailboxes_and_two_cover_them_after_a_kill(make_bed, tmp_path, postgres):
    bed = make_bed(extra_addresses=EXTRA)
    url = postgres.new_database()
    path, config = ten_mailboxes(bed, tmp_path, url)
    samples = bulk_samples(300)
    for i, sample in enumerate(samples):  # a backlog in every mailbox while the leases move
        bed.deliver(SHARED[i % len(SHARED)], sample.raw, mail_from=sample.envelope_from)

    logs = [tmp_path / f"instance{n}.log" for n in range(3)]
    processes = [start_daemon_process(path, logs[0])]
    try:
        wait_for(lambda: sum(holders(url).values()) == 10, "the first instance holding all ten", 120)
        processes += [start_daemon_process(path, log) for log in logs[1:]]
        pids = {p.pid for p in processes}
        wait_for(lambda: sorted(holders(url).values()) == [3, 3, 4] and {pid_of(h) for h in holders(url)} == pids,
                 "ten mailboxes spread 4/3/3 over three instances", 300)
        wait_for(lambda: count_rows(config, MessageRow.state == FILED) == len(samples), "the backlog filed", 300)

        victim = next(p for p in processes if p.pid == pid_of(holders(url).most_common()[-1][0]))
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        survivors = pids - {victim.pid}
        wait_for(lambda: sum(holders(url).values()) == 10 and {pid_of(h) for h in holders(url)} == survivors,
                 "the two survivors covering all ten", 120)
        later = bulk_samples(320)[300:]  # mail after the kill reaches the reps too
        for i, sample in enumerate(later):
            bed.deliver(SHARED[i % len(SHARED)], sample.raw, mail_from=sample.envelope_from)
        wait_for(lambda: count_rows(config, MessageRow.state == FILED) == len(samples) + len(later),
                 "the mail after the kill filed", 180)
        wait_for(lambda: sorted(holders(url).values()) == [5, 5], "ten mailboxes spread 5/5 over two", 300)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
        close_database(url)

    text = "".join(log.read_text() for log in logs)
    assert "Traceback" not in text
    assert "handed over to balance instances (this one holds" in text
    forwards = forwards_by_original(bed, config)
    routed = {str(parsed(s.raw)["Message-ID"]) for s in samples + later if s.outcome == "routed"}
    assert routed <= set(forwards)  # nothing lost
    twice = {mid: len(v) for mid, v in forwards.items() if len(v) > 1}
    assert not twice, twice  # nothing in flight at a hand-over or at the kill: each forwarded once
