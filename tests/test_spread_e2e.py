"""Issue 17 "instances spread mailboxes": three `run` processes on one PostgreSQL over ten shared
mailboxes converge to 4/3/3 (before: the first to start kept all ten); leases handed over while
a backlog is routed forward nothing twice; after a SIGKILL of one the other two cover all ten."""
from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
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


def shared_mailboxes(bed, tmp_path, url: str, addresses=SHARED, smtp_port: int | None = None):
    path = write_testbed_config(ROOT / "config.toml", bed, tmp_path, database=url)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    base = {k: v for k, v in data["mailbox"][0].items() if k not in ("name", "address", "user", "display_name")}
    data["mailbox"] = [{**base, "name": a.split("@")[0], "address": a, "user": a, "display_name": a.split("@")[0]}
                       for a in addresses]
    if smtp_port is not None:
        data["smtp"]["port"] = smtp_port
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path, load_config(path)


def per_machine(path, count: int) -> list:
    """One config per instance, each with its own spool folder, as on separate machines: there
    the accepted log (act/outbox.py) of a send in flight at a hand-over is not the taker's."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    paths = []
    for n in range(count):
        data["daemon"]["spool_dir"] = str(path.parent / f"spool{n}")
        paths.append(path.parent / f"instance{n}.toml")
        paths[-1].write_text(tomli_w.dumps(data), encoding="utf-8")
    return paths


def holders(url: str) -> Counter[str]:
    """Mailbox leases per holder ("host:pid"), as `status` shows them."""
    with open_database(url)() as session:
        return Counter(row.holder for row in session.scalars(select(LeaseRow).where(LeaseRow.name.like("mailbox %"))))


def pid_of(holder: str) -> int:
    return int(holder.rsplit(":", 1)[1])


class SlowAcceptance:
    """A TCP relay in front of the bed's SMTP server that holds the answer to each message's
    final "." back for `delay` seconds, beyond the round's wait for its sender (SENDER_WAIT):
    so a forward is still in flight when a mailbox loop reaches the end of a round."""

    def __init__(self, port: int, delay: float) -> None:
        self.target, self.delay = port, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []  # closed at the end, each once
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target))
                self.sockets += [client, server]
                ended = threading.Event()
                threading.Thread(target=self._pipe, args=(client, server, ended, False), daemon=True).start()
                threading.Thread(target=self._pipe, args=(server, client, ended, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, ended: threading.Event, answers: bool) -> None:
        tail = b""
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if answers and ended.is_set():  # the server's answer to a message's end
                    ended.clear()
                    time.sleep(self.delay)
                elif not answers:
                    tail = (tail + data)[-5:]
                    if tail == b"\r\n.\r\n":
                        ended.set()
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_three_instances_spread_ten_mailboxes_and_two_cover_them_after_a_kill(make_bed, tmp_path, postgres):
    bed = make_bed(extra_addresses=EXTRA)
    url = postgres.new_database()
    path, config = shared_mailboxes(bed, tmp_path, url)
    samples = bulk_samples(300)
    for i, sample in enumerate(samples):  # a backlog in every mailbox while the leases move
        bed.deliver(SHARED[i % len(SHARED)], sample.raw, mail_from=sample.envelope_from)

    logs = [tmp_path / f"instance{n}.log" for n in range(3)]
    paths = per_machine(path, 3)
    processes = [start_daemon_process(paths[0], logs[0])]
    try:
        wait_for(lambda: sum(holders(url).values()) == 10, "the first instance holding all ten", 120)
        processes += [start_daemon_process(p, log) for p, log in zip(paths[1:], logs[1:])]
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


def test_a_mailbox_is_handed_over_only_with_no_forward_in_flight(make_bed, tmp_path, postgres):
    """Every forward takes longer than a round waits for it, so rounds often end with one in
    flight. A hand-over then would let the taker (another machine: its own accepted log) send
    the forward again; it waits until the sender is idle and its outcome recorded."""
    bed = make_bed(extra_addresses=EXTRA[:2])
    relay = SlowAcceptance(bed.smtp_port, delay=6.0)
    url = postgres.new_database()
    path, config = shared_mailboxes(bed, tmp_path, url, SHARED[:4], smtp_port=relay.port)
    samples = bulk_samples(24)
    for i, sample in enumerate(samples):
        bed.deliver(SHARED[i % 4], sample.raw, mail_from=sample.envelope_from)
    logs = [tmp_path / f"instance{n}.log" for n in range(2)]
    paths = per_machine(path, 2)
    processes = [start_daemon_process(paths[0], logs[0])]
    try:
        wait_for(lambda: sum(holders(url).values()) == 4, "the first instance holding all four", 120)
        processes.append(start_daemon_process(paths[1], logs[1]))
        pids = {p.pid for p in processes}
        wait_for(lambda: sorted(holders(url).values()) == [2, 2] and {pid_of(h) for h in holders(url)} == pids,
                 "four mailboxes spread 2/2", 300)
        wait_for(lambda: count_rows(config, MessageRow.state == FILED) == len(samples), "every copy filed", 300)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
        relay.close()
        close_database(url)

    text = "".join(log.read_text() for log in logs)
    assert "Traceback" not in text
    assert text.count("handed over to balance instances") >= 2, text
    forwards = forwards_by_original(bed, config)
    assert {str(parsed(s.raw)["Message-ID"]) for s in samples} <= set(forwards)
    twice = {mid: len(v) for mid, v in forwards.items() if len(v) > 1}
    assert not twice, twice
