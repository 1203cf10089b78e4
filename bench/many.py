"""Many mailboxes in one process (issue 17 item 4), run by hand:
`python bench/many.py [--mailboxes 50] [--idle-window 120] [--count 100] [--limit 8] [--poll-interval S]`.

Creates --mailboxes users on the test bed (box1@ ...), a config watching each as a shared
mailbox (IDLE, the default), starts `run.py run` and measures, from /proc/PID:

  threads   Threads in /proc/PID/status once every mailbox is connected
  RSS       VmRSS then, and VmHWM (peak) at the end
  idle CPU  utime + stime over --idle-window seconds with nothing arriving, per minute
  latency   arrival (LMTP accepted) -> forward accepted by SMTP (messages.sent_at), p50/p95,
            for --count inquiries delivered one at a time, round-robin over the mailboxes

`--limit` is daemon.max_connections_per_server (default 8, the shipped default): with 50
mailboxes on one server they take turns, each polled every --poll-interval, so this is that
mode's latency; pass --limit 100 to give every mailbox its own IDLE session. Writes bench/results/many.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import (DaemonProcess, LmtpSender, envelope, load, load_average, mailboxes_config, mib,
                    print_table, sessions_for, summary, test_bed, write_result)
from sqlalchemy import select

from mailrouter.intake.fingerprint import content_key
from mailrouter.store import MessageRow
from mailrouter.testing.samples import bulk_samples


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise RuntimeError("no Threads line")


def wait_sent(sessions, key: str, timeout: float) -> MessageRow | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            row = session.scalars(select(MessageRow).where(MessageRow.content_key == key)).first()
        if row is not None and row.sent_at is not None:
            return row
        time.sleep(0.02)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=50)
    parser.add_argument("--idle-window", type=float, default=120.0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--poll-interval", type=float, default=None,
                        help="each mailbox's poll_interval (default: the example config's, 30 s): "
                             "how often a mailbox without a session of its own takes its turn")
    args = parser.parse_args()

    users = [f"box{i}@example.com" for i in range(1, args.mailboxes + 1)]
    result = envelope(mailboxes=args.mailboxes, limit=args.limit, poll_interval=args.poll_interval)
    with test_bed(users) as (bed, workdir):
        path = mailboxes_config(bed, workdir, users, args.poll_interval, max_connections_per_server=args.limit)
        config = load(path)
        sessions = sessions_for(config)
        with DaemonProcess(path, workdir / "daemon.log") as daemon:
            connected = daemon.wait_connected([u.split("@")[0] for u in users], timeout=600)
            time.sleep(5)  # the first rounds' folder creation settles
            result["connected_s"] = round(connected, 1)
            result["threads"] = threads(daemon.pid)
            result["rss_mib"] = mib(daemon.status()["VmRSS"])
            cpu_before, t_before = daemon.cpu_seconds(), time.monotonic()
            time.sleep(args.idle_window)
            cpu, window = daemon.cpu_seconds() - cpu_before, time.monotonic() - t_before
            result["idle_cpu_s_per_min"] = round(cpu / window * 60, 2)
            result["threads_after_idle"] = threads(daemon.pid)

            latencies, lost = [], 0
            with LmtpSender(bed.lmtp_port) as lmtp:
                for i, sample in enumerate(s for s in bulk_samples(args.count * 2) if s.outcome == "routed"):
                    if i >= args.count:
                        break
                    lmtp.deliver(users[i % len(users)], sample.raw, sample.envelope_from)
                    arrived = time.time()
                    row = wait_sent(sessions, content_key(sample.raw), args.timeout)
                    if row is None:
                        lost += 1
                        continue
                    latencies.append(row.sent_at.timestamp() - arrived)
            daemon.check_alive()
            result["latency_s"] = summary(latencies)
            result["timed_out"] = lost
            result["rss_peak_mib"] = mib(daemon.status()["VmHWM"])
    result["load_after"] = load_average()
    print_table(["mailboxes", "limit", "threads", "RSS MiB", "peak MiB", "idle CPU s/min", "p50 s", "p95 s",
                 "timed out"],
                [[args.mailboxes, args.limit, result["threads"], result["rss_mib"], result["rss_peak_mib"],
                  result["idle_cpu_s_per_min"], round(result["latency_s"]["p50"], 2),
                  round(result["latency_s"]["p95"], 2), lost]])
    print("written to", write_result("many", result))


if __name__ == "__main__":
    main()
