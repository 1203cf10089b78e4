"""Idle-round cost against INBOX size (issue 12 item 2): an INBOX holding N adopted messages vs
an empty one. Each measured round is MailboxWorker.round on a live connection with no new mail.

    python bench/intake.py --messages 100000 --rounds 50
"""
from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta, timezone

from common import SALES, load, percentile, test_bed, write_config  # noqa: E402

from mailrouter.intake.imap import Mailbox
from mailrouter.runtime.daemon import Daemon
from mailrouter.runtime.mailbox import imap_settings


def _append(bed, count: int) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=30)
    client = bed.imap(SALES)
    try:
        for i in range(count):
            raw = (f"From: buyer{i}@example.org\r\nTo: {SALES}\r\nSubject: old {i}\r\n"
                   f"Message-ID: <old{i}@example.org>\r\n\r\nhistory {i}\r\n").encode()
            client.append("INBOX", raw, ("\\Seen",), old)
    finally:
        client.logout()


def idle_rounds(messages: int, rounds: int) -> list[float]:
    with test_bed() as (bed, workdir):
        _append(bed, messages)
        config = load(write_config(bed, workdir, mailboxes=["sales"]))
        daemon = Daemon(config)  # not started: its worker is driven by hand
        worker = daemon.workers[0]
        conn = Mailbox.connect(imap_settings(worker.mailbox))
        try:
            validity = conn.select_inbox()
            conn.ensure_folders(worker._static_folders())  # as _serve does
            worker.round(conn, validity)  # connect round: first start adopts, full reconciliation
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                worker.round(conn, validity)
                times.append(time.perf_counter() - start)
            return times
        finally:
            conn.logout()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--full", action="store_true", help="every round a full reconciliation (the old way)")
    args = parser.parse_args()
    if args.full:
        import mailrouter.runtime.mailbox as mailbox
        mailbox.RECONCILE_INTERVAL = 0.0
    for n in (0, args.messages):
        t = idle_rounds(n, args.rounds)
        print(f"INBOX {n:>7} adopted: idle round p50 {percentile(t, 50) * 1000:.2f} ms, "
              f"p95 {percentile(t, 95) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
