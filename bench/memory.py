"""Peak memory, run by hand: `python bench/memory.py [--message-mb 25 | --attachment-mb N]`.

The daemon (`python run.py -c CONFIG run`, example config on the test bed) is started on an
empty INBOX and its RSS read once it is connected, then again after it routed one small inquiry
(which loads langdetect's profiles and the templates, as any running daemon has); then one buyer's inquiry of
--message-mb MiB in all (a German PCB inquiry with one PDF attachment, base64 in the message)
is delivered to sales@, and VmHWM is read again once the copy is filed. Also checks that the
forward reached the rep whole. Writes bench/results/memory.json.

--trace instead runs the daemon's stages on that message in this process under tracemalloc
(size, spool, admit with its database transaction, SMTP send; with --in-memory the path for
small messages: whole fetch, parse, admit, send) and prints each stage's peak of Python
allocations above what was live before it: where the RSS goes.

--mix 120 instead delivers 120 inquiries of --mix-mb (1.9) MiB each, just under the 2 MiB
spool threshold, before the daemon starts (a backlog after an outage), and reports the peak
of the daemon and of its parser process once all are filed (issue 14 P4).

--attachment-mb 25 makes a 25 MB *attachment* (a ~33 MB message): its forward is larger than
the test bed's SMTP limit (aiosmtpd's 32 MiB default), so it ends Undeliverable, as it would
on most real servers.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from common import (SALES, DaemonProcess, LmtpSender, envelope, load, load_average, mib, print_table,
                    sessions_for, test_bed, write_config, write_result)
from sqlalchemy import select

from mailrouter.intake.fingerprint import content_key
from mailrouter.intake.imap import Mailbox
from mailrouter.act.outbox import Outbox
from mailrouter.parse import parse_message
from mailrouter.act.admit import Router
from mailrouter.act.original import Spooled
from mailrouter.store import MessageRow, OutboxRow, open_database
from mailrouter.testing.samples import bulk_samples
from mailrouter.intake.spool import Spool
from mailrouter.testing.testbed import HOST, free_port
from mailrouter.runtime.mailbox import imap_settings

GOAL_MIB = 150.0  # issue 7


def wait_filed(sessions, key: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            row = session.scalars(select(MessageRow).where(MessageRow.content_key == key)).first()
        if row is not None and row.filed_at is not None:
            return
        time.sleep(0.05)
    raise RuntimeError("the warm-up inquiry was not filed in time")


def trace_stages(sample, in_memory: bool = False) -> list[tuple[str, float, float]]:
    """(stage, peak MiB above the start of the stage, MiB still held after it) per stage."""
    rows = []
    with test_bed() as (bed, workdir):
        config = load(write_config(bed, workdir, mailboxes=["sales"]))
        with LmtpSender(bed.lmtp_port) as lmtp:
            lmtp.deliver(SALES, sample.raw, sample.envelope_from)
        sessions = open_database(config.database)
        router, outbox = Router(config, sessions), Outbox(config, sessions)
        conn = Mailbox.connect(imap_settings(config.mailboxes[0]))
        uidvalidity = conn.select_inbox()
        parse_message(bulk_samples(1)[0].raw, config.parse)  # warm: lazy imports, language profiles
        tracemalloc.start()

        def stage(name, fn):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            out = fn()
            now, peak = tracemalloc.get_traced_memory()
            rows.append((name, round((peak - before) / 2**20, 1), round((now - before) / 2**20, 1)))
            return out

        if in_memory:
            uid, raw = stage("IMAP fetch (imapclient, whole message)",
                             lambda: list(conn.fetch(conn.unprocessed_uids()))[0])
            stage("parse_message alone", lambda: parse_message(raw, config.parse))
            stage("Router.admit (parse + decide + forward + DB insert)",
                  lambda: router.admit("sales", uidvalidity, uid, raw))
        else:  # the daemon's path for a message over daemon.large_message_bytes
            uid = conn.unprocessed_uids()[0]
            size = stage("IMAP FETCH RFC822.SIZE", lambda: conn.sizes([uid])[uid])
            assert size > config.large_message_bytes, "the message is under the large-message threshold"
            spool = Spool(config.spool_dir)
            path = spool.path_for("sales", "INBOX", uidvalidity, uid)
            original = stage("spool: FETCH BODY.PEEK[]<…> 1 MiB chunks + scan + fsync",
                             lambda: spool.receive(path, conn.fetch_chunks(uid)))
            rows.append(("  (reduced message for parsing)", round(len(original.reduced) / 2**20, 3), 0.0))
            stage("Router.admit_original (parse reduced + decide + forward head/tail + DB)",
                  lambda: router.admit_original("sales", uidvalidity, uid, Spooled(original)))
        with sessions() as session:
            item = session.get(OutboxRow, 1)
            stored = len(item.payload or b"") + len(item.tail or b"")
        rows.append(("  (forward bytes stored in the outbox row)", round(stored / 2**20, 3), 0.0))
        with smtp_sink() as port:  # the bed's SMTP server runs in this process: its copies would count
            outbox.config = replace(config, smtp=replace(config.smtp, server=replace(config.smtp.server, port=port)))
            stage("Outbox.flush (aiosmtplib sendmail, or head + spool file + tail streamed)",
                  lambda: outbox.flush("sales"))
        with sessions() as session:
            assert session.get(OutboxRow, 1).status == "sent", "the forward was not accepted"
        tracemalloc.stop()
        conn.logout()
    return rows


@contextmanager
def smtp_sink() -> Iterator[int]:
    """An SMTP server in its own process that accepts and discards (aiosmtpd's Sink)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                                "-l", f"{HOST}:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the SMTP sink did not start")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--message-mb", type=float, default=25.0, help="whole message, MiB (default 25)")
    parser.add_argument("--attachment-mb", type=float, help="attachment size in MB instead")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--trace", action="store_true", help="tracemalloc per stage, in this process")
    parser.add_argument("--mix", type=int, default=0, help="a backlog of this many messages of --mix-mb MiB")
    parser.add_argument("--mix-mb", type=float, default=1.9)
    parser.add_argument("--in-memory", action="store_true",
                        help="with --trace: the small-message path (whole message in memory) instead")
    args = parser.parse_args()
    if args.mix:
        mix_run(args.mix, args.mix_mb, args.timeout)
        return

    if args.attachment_mb:
        size = int(args.attachment_mb * 1_000_000)
    else:  # base64 makes 3 bytes 4 (plus line ends): leave room for them and the text part
        size = int(args.message_mb * 2**20 * 0.74)
    sample = bulk_samples(1, start=90_000, attachment_every=1, attachment_size=size)[0]
    key = content_key(sample.raw)
    if args.trace:
        result = envelope(attachment_bytes=size, message_bytes=len(sample.raw))
        result["trace"] = trace_stages(sample, args.in_memory)
        print_table(("stage", "peak MiB above start", "MiB held after"), result["trace"])
        write_result("memory-trace", result)
        return
    result = envelope(attachment_bytes=size, message_bytes=len(sample.raw))
    with test_bed() as (bed, workdir):
        config_path = write_config(bed, workdir)
        config = load(config_path)
        sessions = sessions_for(config)
        with DaemonProcess(config_path, workdir / "daemon.log") as daemon:
            daemon.wait_connected([m.name for m in config.mailboxes])
            time.sleep(1.0)
            connected = daemon.status()
            small = bulk_samples(1, start=91_000)[0]
            with LmtpSender(bed.lmtp_port) as lmtp:
                lmtp.deliver(SALES, small.raw, small.envelope_from)
            wait_filed(sessions, content_key(small.raw), args.timeout)
            baseline = daemon.status()
            samples = []
            with LmtpSender(bed.lmtp_port) as lmtp:
                started = time.time()
                lmtp.deliver(SALES, sample.raw, sample.envelope_from)
            row = None
            while time.time() - started < args.timeout:
                daemon.check_alive()
                samples.append((round(time.time() - started, 2), daemon.status()["VmRSS"]))
                with sessions() as session:
                    row = session.scalars(select(MessageRow).where(MessageRow.content_key == key)).first()
                if row is not None and row.filed_at is not None:
                    break
                time.sleep(0.05)
            peak = daemon.status()
            children = daemon.children_status()
            handled_s = time.time() - started
        rep_email = config.reps[row.rep].email if row is not None and row.rep else None
        forward_bytes = max((len(m) for m in bed.fetch_all(rep_email)), default=0) if rep_email else 0
    result.update({
        "connected_rss_mib": mib(connected["VmRSS"]),
        "baseline_rss_mib": mib(baseline["VmRSS"]), "baseline_hwm_mib": mib(baseline["VmHWM"]),
        "peak_rss_mib": mib(peak["VmHWM"]), "growth_mib": round(mib(peak["VmHWM"]) - mib(baseline["VmHWM"]), 1),
        "rss_after_mib": mib(peak["VmRSS"]), "handled_s": handled_s,
        "outcome": row.outcome if row else None, "filed": bool(row and row.filed_at),
        "forward_bytes": forward_bytes, "goal_mib": GOAL_MIB, "goal_met": mib(peak["VmHWM"]) <= GOAL_MIB,
        "rss_samples_kib": samples, "load_after": load_average(),
        # a parser process exists only during a backlog (and two minutes after): counted if there
        "children_peak_mib": round(sum(mib(c["VmHWM"]) for c in children.values()), 1),
        "daemon_and_children_peak_mib": round(mib(peak["VmHWM"]) + sum(mib(c["VmHWM"]) for c in children.values()), 1),
    })

    print_table(("what", "MiB"), [
        ("message size", round(len(sample.raw) / 2**20, 1)),
        ("daemon RSS, connected, nothing routed yet", result["connected_rss_mib"]),
        ("daemon RSS after one small inquiry (warm)", result["baseline_rss_mib"]),
        ("daemon peak RSS (VmHWM) routing the big one", result["peak_rss_mib"]),
        ("growth over the warm peak", result["growth_mib"]),
        ("parser process, peak (started only for a backlog)", result["children_peak_mib"]),
        ("daemon + children, sum of peaks", result["daemon_and_children_peak_mib"]),
        ("forward in the rep's INBOX", round(forward_bytes / 2**20, 1)),
    ])
    print(f"\ngoal ≤ {GOAL_MIB:g} MiB: {'met' if result['goal_met'] else 'MISSED'}; "
          f"{result['outcome']}, filed {result['filed']} in {handled_s:.1f}s; "
          f"load {result['load_before'][0]:.2f} → {result['load_after'][0]:.2f}")
    write_result("memory", result)


def mix_run(count: int, message_mb: float, timeout: float) -> None:
    """A backlog of `count` messages of `message_mb` MiB: peak memory of daemon and child."""
    size = int(message_mb * 2**20 * 0.74)
    samples = bulk_samples(count, start=95_000, attachment_every=1, attachment_size=size)
    result = envelope(mix_count=count, message_bytes=len(samples[0].raw))
    with test_bed() as (bed, workdir):
        config_path = write_config(bed, workdir)
        config = load(config_path)
        sessions = sessions_for(config)
        with LmtpSender(bed.lmtp_port) as lmtp:
            for sample in samples:
                lmtp.deliver(SALES, sample.raw, sample.envelope_from)
        with DaemonProcess(config_path, workdir / "daemon.log") as daemon:
            started, child_peak, filed = time.time(), 0, 0
            while time.time() - started < timeout:
                daemon.check_alive()
                child_peak = max([child_peak, *(c["VmHWM"] for c in daemon.children_status().values())])
                with sessions() as session:
                    filed = len(session.scalars(select(MessageRow.id).where(MessageRow.filed_at.is_not(None))).all())
                if filed >= count:
                    break
                time.sleep(0.2)
            peak, handled_s = daemon.status(), time.time() - started
    result.update({"daemon_peak_mib": mib(peak["VmHWM"]), "child_peak_mib": mib(child_peak),
                   "sum_of_peaks_mib": round(mib(peak["VmHWM"]) + mib(child_peak), 1),
                   "filed": filed, "handled_s": round(handled_s, 1), "load_after": load_average()})
    print_table(("what", "value"), [
        ("messages x size", f"{count} x {len(samples[0].raw) / 2**20:.2f} MiB"),
        ("daemon peak RSS (VmHWM), MiB", result["daemon_peak_mib"]),
        ("parser process peak (VmHWM), MiB", result["child_peak_mib"]),
        ("sum of peaks, MiB", result["sum_of_peaks_mib"]),
        ("filed / seconds", f"{filed} / {handled_s:.1f}"),
    ])
    write_result("memory-mix", result)


if __name__ == "__main__":
    main()
