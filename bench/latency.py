"""Routing latency, run by hand: `python bench/latency.py [--count 300] [--mode idle|poll|both]`.

Inquiries are delivered one at a time over LMTP to sales@ while the daemon (a subprocess, the
example config pointed at the test bed) runs; the next is delivered once the previous one is
filed, after a random pause of --gap to --gap + --jitter seconds, so the worker is back in IDLE
or its poll sleep and arrivals fall at random points of the poll cycle (a fixed pause locks
them to one phase of it), as for mail that arrives out of the blue. Per message, from the moment LMTP accepted it (time.time()):

  decided   the daemon recorded its decision (messages.decided_at: after fetch + parse + decide)
  accepted  SMTP accepted the forward (messages.sent_at = outbox.sent_at)      <- the goal's figure
  readable  the forward is found in the rep's INBOX by an IMAP SEARCH polled every --poll-ms
  filed     the shared copy was moved (messages.filed_at)

Modes: idle = the default config (IMAP IDLE; Dovecot delays IDLE notifications by 500 ms);
poll = fast-poll, `idle = false` and `poll_interval = --poll-interval` (0.05 s) in each
[[mailbox]]. Prints p50/p95/p99 per mode, writes bench/results/latency.json.
"""
from __future__ import annotations

import argparse
import random
import time

from common import (SALES, DaemonProcess, LmtpSender, envelope, load, load_average, print_table,
                    sessions_for, summary, test_bed, write_config, write_result)
from sqlalchemy import select

from mailrouter.intake.fingerprint import content_key
from mailrouter.testing.samples import bulk_samples
from mailrouter.store import MessageRow

WARMUP = 3  # first messages pay for lazy imports and langdetect's profiles: not counted
GOALS = {"idle": 0.6, "poll": 0.1}  # p95 arrival -> forward accepted, seconds (issue 7)
STAGES = ("decided", "accepted", "readable", "filed")


def measure_one(raw: bytes, mail_from: str, lmtp: LmtpSender, sessions, reps: dict, poll: float,
                timeout: float) -> dict[str, float] | None:
    """Deliver one message and return seconds from arrival to each stage (None: timed out)."""
    key = content_key(raw)  # trace headers added by delivery don't change it
    before = time.time()
    lmtp.deliver(SALES, raw, mail_from)
    arrived = time.time()
    readable = None
    row = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            row = session.scalars(select(MessageRow).where(MessageRow.content_key == key)).first()
        if row is not None and row.forward_message_id and readable is None:
            client = reps[row.rep]
            if client.search(["HEADER", "Message-ID", row.forward_message_id]):
                readable = time.time()
        if row is not None and row.filed_at is not None and (readable or not row.forward_message_id):
            break
        time.sleep(poll)
    else:
        return None
    result = {"lmtp": arrived - before, "decided": row.decided_at.timestamp() - arrived,
              "filed": row.filed_at.timestamp() - arrived}
    if row.sent_at is not None:
        result["accepted"] = row.sent_at.timestamp() - arrived
    if readable is not None:
        result["readable"] = readable - arrived
    return result


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, object]:
    samples = bulk_samples(args.count + WARMUP, start=50_000 if mode == "poll" else 40_000)
    with test_bed() as (bed, workdir):
        idle = mode == "idle"
        config_path = write_config(bed, workdir, idle=idle,
                                   poll_interval=None if idle else args.poll_interval)
        config = load(config_path)
        sessions = sessions_for(config)
        reps = {}
        for rep in config.reps.values():
            reps[rep.id] = bed.imap(rep.email)
            reps[rep.id].select_folder("INBOX", readonly=True)
        names = [m.name for m in config.mailboxes]
        load_start = load_average()
        with DaemonProcess(config_path, workdir / "daemon.log") as daemon, LmtpSender(bed.lmtp_port) as lmtp:
            daemon.wait_connected(names)
            time.sleep(args.gap)
            per_message, missed = [], 0
            rng = random.Random(7)
            cpu0, wall0 = daemon.cpu_seconds(), time.monotonic()
            for i, sample in enumerate(samples):
                got = measure_one(sample.raw, sample.envelope_from, lmtp, sessions, reps,
                                  args.poll_ms / 1000, args.timeout)
                if got is None:
                    missed += 1
                    daemon.check_alive()
                elif i >= WARMUP:
                    per_message.append(got)
                time.sleep(args.gap + rng.uniform(0, args.jitter))
            daemon_cpu = daemon.cpu_seconds() - cpu0
            wall = time.monotonic() - wall0
            for client in reps.values():
                client.logout()
    stats = {stage: summary([m[stage] for m in per_message if stage in m]) for stage in (*STAGES, "lmtp")}
    goal = GOALS[mode]
    return {"mode": mode, "config": {"idle": idle, "poll_interval": None if idle else args.poll_interval},
            "count": len(per_message), "timed_out": missed, "stats_s": stats,
            "goal_p95_accepted_s": goal, "goal_met": stats["accepted"]["p95"] <= goal,
            "daemon_cpu_share": round(daemon_cpu / wall, 3), "load_during": (load_start, load_average()),
            "samples_s": per_message if args.keep_samples else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300, help="measured inquiries per mode (default 300)")
    parser.add_argument("--mode", choices=["idle", "poll", "both"], default="both")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="fast-poll period, s (default 0.05)")
    parser.add_argument("--gap", type=float, default=0.3, help="least pause after each filed message, s (0.3)")
    parser.add_argument("--jitter", type=float, default=0.2, help="plus a random 0..jitter s (0.2)")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="bench's own DB/IMAP poll period (default 5)")
    parser.add_argument("--timeout", type=float, default=15.0, help="give up on a message after this, s")
    parser.add_argument("--keep-samples", action="store_true", help="write every message's times to the JSON")
    args = parser.parse_args()

    result = envelope(count=args.count)
    modes = ["idle", "poll"] if args.mode == "both" else [args.mode]
    result["modes"] = {}
    for mode in modes:
        print(f"{mode}: {args.count} inquiries (+{WARMUP} warm-up), one at a time…", flush=True)
        result["modes"][mode] = run_mode(mode, args)
    result["load_after"] = load_average()

    rows = []
    for mode, r in result["modes"].items():
        for stage in STAGES:
            s = r["stats_s"][stage]
            goal = f"≤ {r['goal_p95_accepted_s']}" if stage == "accepted" else ""
            met = ("met" if r["goal_met"] else "MISSED") if stage == "accepted" else ""
            rows.append((mode, f"arrival→{stage}", s["n"], s["p50"] * 1000, s["p95"] * 1000,
                         s["p99"] * 1000, s["max"] * 1000, goal, met))
    print()
    print_table(("mode", "interval", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "goal p95 s", ""), rows)
    for mode, r in result["modes"].items():
        print(f"{mode}: timed out {r['timed_out']}; daemon CPU {r['daemon_cpu_share']:.0%} of one core; "
              f"load {r['load_during'][0][0]:.2f} → {r['load_during'][1][0]:.2f}")
    write_result("latency", result)


if __name__ == "__main__":
    main()
