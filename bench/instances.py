"""Instances on one PostgreSQL (issue 17 item 5), run by hand:
`python bench/instances.py [--count 1000] [--mailboxes 10] [--instances 1 2 3] [--failover]`.

Per N in --instances: a fresh test bed and PostgreSQL database, a backlog of --count inquiries
spread over --mailboxes shared mailboxes (box1@ ...), then N `run.py run` processes on that one
database started together; total msg/s = filed / seconds from the first spawn to the last filed.
The spread is how many mailbox leases each instance holds (the `leases` table `status` reads),
when the last message was filed; fair_s is the first moment since the spawn that the spread was
fair (all held, most minus fewest at most 1).

--failover: two instances on a fresh backlog; once 10 % is filed the one holding the most
mailboxes is SIGKILLed; the failover time is from the kill to the first forward (messages.sent_at)
by the other instance in a mailbox the killed one held. Writes bench/results/instances.json.
"""
from __future__ import annotations

import argparse
import signal
import time
from datetime import datetime, timezone

from common import (DaemonProcess, LmtpSender, envelope, load, load_average, mailboxes_config, print_table,
                    sessions_for, test_bed, write_result)
from sqlalchemy import func, select

from mailrouter.store import FILED, LeaseRow, MessageRow, close_database
from mailrouter.testing.postgres import ThrowawayPostgres
from mailrouter.testing.samples import bulk_samples


def filed(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(MessageRow).where(MessageRow.state == FILED))


def held_by(sessions, pid: int) -> set[str]:
    """The mailboxes the instance `pid` holds, by the leases table (holder "host:pid")."""
    return {name for name, holder in mailbox_holders(sessions).items() if holder.endswith(f":{pid}")}


def mailbox_holders(sessions) -> dict[str, str]:
    with sessions() as session:
        rows = session.scalars(select(LeaseRow).where(LeaseRow.name.like("mailbox %")))
        return {row.name.removeprefix("mailbox "): row.holder for row in rows}


def spread(sessions, daemons) -> list[int]:
    """Mailbox leases per instance, most first."""
    holders = list(mailbox_holders(sessions).values())
    return sorted((sum(h.endswith(f":{d.pid}") for h in holders) for d in daemons), reverse=True)


def fair(counts: list[int], mailboxes: int) -> bool:
    return sum(counts) == mailboxes and max(counts) - min(counts) <= 1


def one_run(server: ThrowawayPostgres, users: list[str], count: int, instances: int, timeout: float,
            kill: bool = False) -> dict[str, object]:
    samples = bulk_samples(count)
    with test_bed(users) as (bed, workdir):
        with LmtpSender(bed.lmtp_port) as lmtp:
            for i, sample in enumerate(samples):
                lmtp.deliver(users[i % len(users)], sample.raw, sample.envelope_from)
        url = server.new_database()
        path = mailboxes_config(bed, workdir, users, database=url)
        sessions = sessions_for(load(path))
        daemons = []
        try:
            started = time.time()
            daemons = [DaemonProcess(path, workdir / f"daemon{n}.log") for n in range(instances)]
            out: dict[str, object] = {"instances": instances, "count": count}
            killed_at, victim_boxes, failover, fair_s = None, set(), None, None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                done = filed(sessions)
                if fair_s is None and killed_at is None and fair(spread(sessions, daemons), len(users)):
                    fair_s = round(time.time() - started, 1)
                if done >= count:
                    break
                if kill and killed_at is None and done >= count // 10:
                    victim = max(daemons, key=lambda d: len(held_by(sessions, d.pid)))
                    victim_boxes = held_by(sessions, victim.pid)
                    victim.process.send_signal(signal.SIGKILL)
                    victim.process.wait(10)
                    killed_at = datetime.now().astimezone()
                    out["killed_holding"] = sorted(victim_boxes)
                    out["filed_at_kill"] = done
                if killed_at is not None and failover is None:
                    with sessions() as session:
                        first = session.scalar(select(func.min(MessageRow.sent_at)).where(
                            MessageRow.mailbox.in_(victim_boxes), MessageRow.sent_at > killed_at))
                    if first is not None:
                        first = first if first.tzinfo else first.replace(tzinfo=timezone.utc)
                        failover = (first - killed_at).total_seconds()
                time.sleep(0.1)
            seconds = time.time() - started
            done = filed(sessions)
            out.update(filed=done, complete=done >= count, seconds=round(seconds, 1),
                       rate=round(done / seconds, 1), fair_s=fair_s,
                       spread="/".join(map(str, spread(sessions, [d for d in daemons if d.process.poll() is None]))))
            if kill:
                out["failover_s"] = failover
        finally:
            for d in daemons:
                if d.process.poll() is None:
                    d.stop()
            close_database(url)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--failover", action="store_true")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    users = [f"box{i}@example.com" for i in range(1, args.mailboxes + 1)]
    result = envelope(count=args.count, mailboxes=args.mailboxes)
    server = ThrowawayPostgres(durable=True).start()
    try:
        result["runs"] = [one_run(server, users, args.count, n, args.timeout) for n in args.instances]
        if args.failover:
            result["failover"] = one_run(server, users, args.count, 2, args.timeout, kill=True)
    finally:
        server.stop()
    result["load_after"] = load_average()
    rows = [[r["instances"], r["filed"], r["seconds"], r["rate"], r["spread"], r["fair_s"]] for r in result["runs"]]
    print_table(["instances", "filed", "seconds", "msg/s", "spread at end", "fair after s"], rows)
    if args.failover:
        f = result["failover"]
        print(f"failover: killed holding {f.get('killed_holding')} at {f.get('filed_at_kill')} filed; "
              f"first forward by the other instance after {f.get('failover_s')} s; all filed: {f['complete']}; "
              f"survivor holds {f['spread']}")
    print("written to", write_result("instances", result))


if __name__ == "__main__":
    main()
