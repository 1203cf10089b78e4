"""Kill loop: SIGKILL the daemon again and again while two mailboxes have a backlog, with the
default config (parser process on); then count what was lost and what was forwarded twice
(issue 13, "Done when").

Each cycle delivers the next slice of messages (half to sales@, half to info@), starts the
daemon, waits until this run has filed a message, lets it work a random 0-0.1 s more and SIGKILLs
the daemon's PID alone (the parser child must end by itself, EOF on its pipe). A last run
without a kill finishes the backlog and is stopped with SIGTERM. Lost: an inquiry with no
forward, or a shared copy missing from its mailbox. Duplicates: forwards beyond the first.
"""
from __future__ import annotations

import argparse
import email
import email.policy
import random
import signal
import time
from collections import Counter
from dataclasses import replace

from common import (DaemonProcess, LmtpSender, envelope, load, print_table, sessions_for, test_bed,
                    write_config, write_result)
from sqlalchemy import func, select

from mailrouter.store import ADOPTED, FILED, MessageRow
from mailrouter.testing.samples import INFO, SALES, bulk_samples


def forwards_per_original(bed, config) -> Counter:
    """Original Message-ID -> forwards found across every rep's INBOX."""
    counts: Counter = Counter()
    for rep in config.reps.values():
        for raw in bed.fetch_all(rep.email):
            counts[str(email.message_from_bytes(raw, policy=email.policy.default)["In-Reply-To"])] += 1
    return counts


def filed_count(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(MessageRow).where(MessageRow.state == FILED))


def all_filed(sessions, expected: int) -> bool:
    with sessions() as session:
        states = Counter(dict(session.execute(select(MessageRow.state, func.count()).where(
            MessageRow.state != ADOPTED).group_by(MessageRow.state)).all()))
    return sum(states.values()) >= expected and states[FILED] == sum(states.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="messages in all (default 1000)")
    parser.add_argument("--kills", type=int, default=30, help="SIGKILLs (default 30)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    half = args.count // 2
    samples = ([replace(s, to=(SALES,)) for s in bulk_samples(half)]
               + [replace(s, to=(INFO,)) for s in bulk_samples(args.count - half, start=20000)])
    rng.shuffle(samples)
    slices = [samples[i::args.kills] for i in range(args.kills)]
    with test_bed() as (bed, workdir):
        config_path = write_config(bed, workdir)
        config = load(config_path)
        sessions = sessions_for(config)
        started = time.time()
        parser_left, delivered, in_hand = 0, 0, []
        with LmtpSender(bed.lmtp_port) as lmtp:
            for cycle, part in enumerate(slices, 1):
                for sample in part:
                    lmtp.deliver(sample.to[0], sample.raw, sample.envelope_from)
                delivered += len(part)
                daemon = DaemonProcess(config_path, workdir / "daemon.log")
                daemon.wait_connected([m.name for m in config.mailboxes])
                before = filed_count(sessions)
                deadline = time.monotonic() + 60
                while filed_count(sessions) == before and time.monotonic() < deadline:
                    time.sleep(0.02)  # kill mid-work: once this run has filed something
                time.sleep(rng.uniform(0.0, 0.1))
                children = daemon.children()
                daemon.process.send_signal(signal.SIGKILL)
                in_hand.append(delivered - filed_count(sessions))  # not yet filed at the kill
                daemon.process.wait()
                daemon._log.close()  # noqa: SLF001 (no stop() after a kill)
                parser_left += wait_gone(children, 20)
                print(f"kill {cycle}/{args.kills}: {in_hand[-1]} of {delivered} not yet filed", flush=True)
        with DaemonProcess(config_path, workdir / "daemon.log") as daemon:
            deadline = time.monotonic() + 600
            while not all_filed(sessions, len(samples)) and time.monotonic() < deadline:
                daemon.check_alive()
                time.sleep(0.5)
            finished = all_filed(sessions, len(samples))
            status = daemon.stop()
        wall = time.time() - started
        forwards = forwards_per_original(bed, config)
        ids = [str(email.message_from_bytes(s.raw, policy=email.policy.default)["Message-ID"]) for s in samples]
        no_forward = sum(forwards[i] == 0 for i in ids)
        copies = {user: sum(len(bed.fetch_all(user, f)) for f in bed.folders(user)) for user in (SALES, INFO)}
        expected = Counter(s.to[0] for s in samples)
        missing_copies = sum(max(expected[u] - copies[u], 0) for u in (SALES, INFO))
        duplicates = sum(forwards[i] - 1 for i in ids if forwards[i] > 1)
        result = {"messages": len(samples), "kills": args.kills, "finished": finished, "final_sigterm_status": status,
                  "lost_no_forward": no_forward, "lost_shared_copies": missing_copies,
                  "duplicates": duplicates, "messages_forwarded_twice_or_more": sum(forwards[i] > 1 for i in ids),
                  "parser_children_left_after_kill": parser_left, "unfinished_at_each_kill": in_hand,
                  "kills_with_work_in_hand": sum(n > 0 for n in in_hand), "seconds": round(wall, 1)}
        print_table(["messages", "SIGKILLs", "with work in hand", "lost", "duplicates", "parser children left", "wall s"],
                    [[len(samples), args.kills, sum(n > 0 for n in in_hand), no_forward + missing_copies, duplicates,
                      parser_left, f"{wall:.0f}"]])
        write_result("killloop", envelope(args=vars(args), **result))


def wait_gone(pids: list[int], timeout: float) -> int:
    """How many of `pids` still run after `timeout` seconds (a zombie has ended)."""
    from pathlib import Path
    deadline = time.monotonic() + timeout

    def running(pid: int) -> bool:
        try:
            return "zombie" not in Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return False

    while time.monotonic() < deadline and any(running(p) for p in pids):
        time.sleep(0.1)
    return sum(running(p) for p in pids)


if __name__ == "__main__":
    main()
