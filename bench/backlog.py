"""Backlog throughput, run by hand: `python bench/backlog.py [--count 5000]`.

`--count` realistic inquiries (eight languages; every tenth with a 200 KB attachment) are
delivered into sales@ INBOX *and*, identically, into a reference user's INBOX before anything
runs. Then, in the same run:

  raw loop   imapclient on the reference INBOX: UID SEARCH, then per batch of --batch UIDs one
             FETCH BODY.PEEK[] and one UID MOVE; no parsing, no routing: what the server and
             the connection allow;
  daemon     `python run.py -c CONFIG run` (the example config on the bed, default IDLE) until
             every message is filed; its peak RSS (VmHWM) and CPU come from /proc.

Prints both rates and their ratio, writes bench/results/backlog.json.
"""
from __future__ import annotations

import argparse
import time
import tomllib
from collections import Counter
from contextlib import ExitStack

import tomli_w

from common import (SALES, DaemonProcess, LmtpSender, envelope, load, load_average, mib, print_table,
                    sessions_for, test_bed, write_config, write_result)
from sqlalchemy import func, select

from mailrouter.testing.samples import bulk_samples
from mailrouter.store import FILED, MessageRow

REFERENCE = "reference@example.com"  # a bed user the daemon does not watch
INFO = "info@example.com"  # the second store's run reads its own copy of the backlog here
GOAL_RATE = 150.0  # msg/s (issue 7)
GOAL_RSS_MIB = 150.0


def deliver(bed, samples, recipients: list[str]) -> float:
    started = time.monotonic()
    with LmtpSender(bed.lmtp_port) as lmtp:
        for sample in samples:
            for rcpt in recipients:
                lmtp.deliver(rcpt, sample.raw, sample.envelope_from)
    return time.monotonic() - started


def raw_loop(bed, batch: int) -> dict[str, float]:
    """Batched FETCH of whole messages + batched UID MOVE: the reference rate."""
    client = bed.imap(REFERENCE)
    try:
        client.create_folder("Done")
        started = time.monotonic()
        client.select_folder("INBOX")
        uids = sorted(client.search(["ALL"]))
        fetched = fetch_s = move_s = 0.0
        count = 0
        for start in range(0, len(uids), batch):
            chunk = uids[start:start + batch]
            t = time.monotonic()
            data = client.fetch(chunk, ["BODY.PEEK[]"])
            fetched += sum(len(d[b"BODY[]"]) for d in data.values())
            count += len(data)
            fetch_s += time.monotonic() - t
            del data
            t = time.monotonic()
            client.move(chunk, "Done")
            move_s += time.monotonic() - t
        elapsed = time.monotonic() - started
    finally:
        client.logout()
    return {"messages": count, "seconds": elapsed, "rate": count / elapsed, "fetch_s": fetch_s,
            "move_s": move_s, "megabytes": fetched / 1e6}


def daemon_run(bed, workdir, count: int, timeout: float, sample_every: float, mailbox: str = "sales",
               database: str | None = None) -> dict[str, object]:
    workdir.mkdir(exist_ok=True)
    config_path = write_config(bed, workdir, mailboxes=[mailbox])
    if database is not None:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        data["daemon"]["database"] = database
        config_path.write_text(tomli_w.dumps(data), encoding="utf-8")
    config = load(config_path)
    sessions = sessions_for(config)
    load_start = load_average()
    with DaemonProcess(config_path, workdir / "daemon.log") as daemon:
        started = time.time()
        filed, peak_rss, progress, children = 0, 0, [], {}
        while time.time() - started < timeout:
            time.sleep(sample_every)
            daemon.check_alive()
            with sessions() as session:
                filed = session.scalar(select(func.count()).select_from(MessageRow).where(
                    MessageRow.mailbox == mailbox, MessageRow.state == FILED))
            status = daemon.status()
            peak_rss = max(peak_rss, status["VmHWM"])
            children.update(daemon.children_status())  # the parser process: last reading of each
            progress.append((round(time.time() - started, 2), filed, status["VmRSS"]))
            if filed >= count:
                break
        done = time.time()
        cpu = daemon.cpu_seconds()
        peak_rss = max(peak_rss, daemon.status()["VmHWM"])
        children.update(daemon.children_status())
    child_cpu = sum(c["cpu"] for c in children.values())
    child_peak = sum(c["VmHWM"] for c in children.values())
    with sessions() as session:
        first_seen, last_filed = session.execute(select(func.min(MessageRow.decided_at), func.max(
            MessageRow.filed_at)).where(MessageRow.mailbox == mailbox)).one()
        outcomes = Counter(dict(session.execute(select(MessageRow.outcome, func.count()).where(
            MessageRow.mailbox == mailbox).group_by(MessageRow.outcome)).all()))
    wall = done - started
    steady = (last_filed.timestamp() - first_seen.timestamp()) if first_seen and last_filed else float("nan")
    return {"filed": filed, "complete": filed >= count, "seconds_from_spawn": wall,
            "rate_from_spawn": filed / wall, "seconds_first_decided_to_last_filed": steady,
            "rate_steady": filed / steady if steady == steady and steady > 0 else float("nan"),
            "peak_rss_mib": mib(peak_rss), "daemon_cpu_s": cpu, "daemon_cpu_share": cpu / wall,
            "parser_cpu_s": child_cpu, "parser_peak_rss_mib": mib(child_peak),
            "cpu_ms_per_message": (cpu + child_cpu) / max(filed, 1) * 1000,
            "outcomes": dict(outcomes), "progress": progress,
            "load_during": (load_start, load_average())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000, help="inquiries in the backlog (default 5000)")
    parser.add_argument("--attachment-every", type=int, default=10, help="one in N has an attachment (10)")
    parser.add_argument("--attachment-size", type=int, default=200_000, help="bytes (default 200 KB)")
    parser.add_argument("--batch", type=int, default=500, help="raw loop FETCH/MOVE batch (default 500)")
    parser.add_argument("--timeout", type=float, default=900, help="give the daemon this long, s")
    parser.add_argument("--sample-every", type=float, default=0.5, help="progress/RSS sampling, s")
    parser.add_argument("--stores", nargs="+", default=["sqlite"], choices=["sqlite", "postgresql"],
                        help="run the daemon on each (same backlog, same bed; PostgreSQL with fsync on)")
    args = parser.parse_args()

    samples = bulk_samples(args.count, attachment_every=args.attachment_every,
                           attachment_size=args.attachment_size)
    result = envelope(count=args.count, attachment_every=args.attachment_every,
                      attachment_size=args.attachment_size, batch=args.batch,
                      backlog_megabytes=round(sum(len(s.raw) for s in samples) / 1e6, 1))
    with test_bed(extra_users=[REFERENCE]) as (bed, workdir), ExitStack() as stack:
        recipients = [SALES, REFERENCE] + ([INFO] if "postgresql" in args.stores else [])
        print(f"delivering {args.count} inquiries ({result['backlog_megabytes']} MB) to "
              f"{', '.join(recipients)}…", flush=True)
        result["delivery_s"] = deliver(bed, samples, recipients)
        print(f"  delivered in {result['delivery_s']:.1f}s; raw loop…", flush=True)
        result["raw_loop"] = raw_loop(bed, args.batch)
        print(f"  raw loop {result['raw_loop']['rate']:.0f} msg/s; daemon…", flush=True)
        if "sqlite" in args.stores:
            result["daemon"] = daemon_run(bed, workdir / "sqlite", args.count, args.timeout, args.sample_every)
        if "postgresql" in args.stores:
            from mailrouter.testing.postgres import ThrowawayPostgres

            server = ThrowawayPostgres(durable=True).start()
            stack.callback(server.stop)
            print("  daemon on PostgreSQL…", flush=True)
            result["daemon_postgresql"] = daemon_run(bed, workdir / "postgresql", args.count, args.timeout,
                                                     args.sample_every, mailbox="info",
                                                     database=server.new_database())
        result.setdefault("daemon", result.get("daemon_postgresql"))
    result["load_after"] = load_average()
    raw, d = result["raw_loop"], result["daemon"]
    result["ratio_daemon_to_raw"] = d["rate_from_spawn"] / raw["rate"]
    result["goals"] = {"rate_msg_s": GOAL_RATE, "rate_met": d["rate_from_spawn"] >= GOAL_RATE,
                       "peak_rss_mib": GOAL_RSS_MIB, "rss_met": d["peak_rss_mib"] <= GOAL_RSS_MIB}

    print()
    print_table(("loop", "messages", "seconds", "msg/s", "goal", ""), [
        ("raw FETCH+MOVE (reference)", raw["messages"], raw["seconds"], raw["rate"], "", ""),
        ("daemon, spawn → all filed", d["filed"], d["seconds_from_spawn"], d["rate_from_spawn"],
         f"≥ {GOAL_RATE:g}", "met" if result["goals"]["rate_met"] else "MISSED"),
        ("daemon, first decided → last filed", d["filed"], d["seconds_first_decided_to_last_filed"],
         d["rate_steady"], "", ""),
    ])
    print(f"\nratio daemon/raw: {result['ratio_daemon_to_raw']:.3f}   "
          f"daemon peak RSS (VmHWM): {d['peak_rss_mib']} MiB   daemon CPU: {d['daemon_cpu_s']:.1f}s "
          f"({d['daemon_cpu_share']:.0%} of one core)")
    print(f"parser process: peak RSS {d['parser_peak_rss_mib']} MiB, CPU {d['parser_cpu_s']:.1f}s; "
          f"daemon + parser CPU per message: {d['cpu_ms_per_message']:.1f} ms")
    print(f"outcomes: {d['outcomes']}   complete: {d['complete']}")
    if "daemon" in result and "daemon_postgresql" in result and "sqlite" in args.stores:
        pg = result["daemon_postgresql"]
        print(f"PostgreSQL (fsync on), same backlog: {pg['rate_from_spawn']:.1f} msg/s from spawn "
              f"({pg['filed']} filed, complete {pg['complete']}), CPU {pg['cpu_ms_per_message']:.1f} ms/msg, "
              f"peak RSS {pg['peak_rss_mib']} MiB")
    print(f"load: before {result['load_before']}, after {result['load_after']}")
    write_result("backlog", result)


if __name__ == "__main__":
    main()
