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


def _write_maildir(bed, count: int) -> None:
    """The INBOX's history written straight into the Maildir, as a mail server that has kept mail
    for years has it: APPEND gets slower as the folder grows (20,000 took 150 s, 100,000 did not
    finish in 25 min). Dovecot indexes the files at the first SELECT; INTERNALDATE is the file's
    mtime, 30 days ago, and ":2,S" marks them read, so a first start adopts them all."""
    import os
    import pwd

    old = (datetime.now(timezone.utc) - timedelta(days=30)).timestamp()
    cur = bed.root / "home" / SALES / "Maildir" / "cur"
    cur.mkdir(parents=True, exist_ok=True)
    dovecot = pwd.getpwnam("dovecot")
    for i in range(count):
        path = cur / f"{int(old)}.M{i}P1.bench:2,S"
        path.write_bytes((f"From: buyer{i}@example.org\r\nTo: {SALES}\r\nSubject: old {i}\r\n"
                          f"Message-ID: <old{i}@example.org>\r\n\r\nhistory {i}\r\n").encode())
        os.utime(path, (old, old))
        os.chown(path, dovecot.pw_uid, dovecot.pw_gid)
    for folder in (cur.parent.parent, cur.parent, cur, cur.parent / "new", cur.parent / "tmp"):
        folder.mkdir(exist_ok=True)
        os.chown(folder, dovecot.pw_uid, dovecot.pw_gid)


def idle_rounds(messages: int, rounds: int) -> list[float]:
    with test_bed() as (bed, workdir):
        if messages:
            _write_maildir(bed, messages)
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
