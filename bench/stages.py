"""Per-stage costs, run by hand: `python bench/stages.py [--count 200] [--profile [--profile-count 1000]]`.

Each stage of the daemon's path, timed per message on a fixed set (the demo samples plus
--count bulk inquiries, every tenth with a 200 KB attachment), p50/p95 in ms, so a regression
points at its stage:

  fingerprint      raw_sha256 + content_key
  parse            mailrouter.parse.parse_message (headers, body, language, products, forms)
  decide           mailrouter.decide.assign.decide with an empty TeamState (classify + rules + team)
  build_forward    mailrouter.act.forward.build_forward (routed ones)
  admit            Router.admit on a fresh SQLite file: all of the above + the transaction
  smtp_connect     aiosmtplib connect (greeting + EHLO) + QUIT: paid once per Outbox.flush
  smtp_send        aiosmtplib sendmail of each forward to the bed, one connection
  imap_fetch_1     Mailbox.fetch of one UID per round trip
  imap_fetch_100   Mailbox.fetch of 100 UIDs per round trip, per message
  imap_file_1      Mailbox.file (STORE flags + UID MOVE) of one UID per round trip
  imap_file_100    the same, 100 UIDs per round trip, per message
  imap_search      UID SEARCH UNDELETED with all messages in INBOX (per call)
  empty_round      MailboxWorker.round with nothing new: what each fast-poll tick costs

and whether a message delivered after the last command shows in the next UID SEARCH at once
(Dovecot answers SEARCH from the view synced at the end of the previous command: without a NOOP
first, new mail is found one poll later).

--profile then runs one MailboxWorker.round over a backlog of --profile-count inquiries in this
process under cProfile (the daemon's threads are invisible to cProfile in a subprocess), writes
bench/results/stages.pstats and prints the top 25 entries by cumulative time.
Writes bench/results/stages.json.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import threading
import time
from collections.abc import Callable

from common import (RESULTS, SALES, LmtpSender, envelope, load, load_average, print_table, summary,
                    test_bed, write_config, write_result)

from mailrouter.decide.assign import TeamState, decide
from mailrouter.intake.fingerprint import content_key, raw_sha256
from mailrouter.act.forward import ForwardSpec, build_forward, tag_labels, tag_subject
from mailrouter.intake.imap import Mailbox
from mailrouter.model import Outcome
from mailrouter.act.outbox import Outbox, smtp_client
from mailrouter.parse import parse_message
from mailrouter.act.admit import Router
from mailrouter.act.outgoing import forward_message_id
from mailrouter.testing.samples import bulk_samples, demo_samples
from mailrouter.store import open_database, utcnow
from mailrouter.act.templating import make_environment
from mailrouter.runtime.mailbox import MailboxWorker, imap_settings


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1000, out


def pure_stages(raws: list[bytes], config) -> tuple[dict[str, list[float]], list[bytes]]:
    """fingerprint, parse, decide, build_forward; returns the timings and the forwards built."""
    env = make_environment(config.template_dirs)
    mailbox = config.mailboxes[0]
    times: dict[str, list[float]] = {"fingerprint": [], "parse": [], "decide": [], "build_forward": []}
    forwards = []
    parse_message(raws[0], config.parse)  # lazy imports and langdetect's profiles load here
    for raw in raws:
        ms, key = timed(lambda: (raw_sha256(raw), content_key(raw))[1])
        times["fingerprint"].append(ms)
        try:
            ms, inquiry = timed(lambda: parse_message(raw, config.parse))
        except Exception:  # the quarantined sample
            continue
        times["parse"].append(ms)
        ms, decision = timed(lambda: decide(inquiry, config, TeamState()))
        times["decide"].append(ms)
        if decision.outcome is not Outcome.ROUTED:
            continue
        rep = config.reps[decision.rep]
        spec = ForwardSpec(shared_address=mailbox.address, shared_name=mailbox.display_name,
                           rep_address=rep.email, rep_name=rep.name,
                           message_id=forward_message_id(key, rep.id, mailbox.address),
                           subject=tag_subject(config.subject_format, inquiry, decision), language=rep.language,
                           labels=tag_labels(config.labels, inquiry, decision))
        now = utcnow().astimezone(config.timezone)
        ms, payload = timed(lambda: build_forward(raw, inquiry, decision, spec, env, now))
        times["build_forward"].append(ms)
        forwards.append((rep.email, payload))
    return times, forwards


def admit_stage(raws: list[bytes], config, workdir) -> list[float]:
    router = Router(config, open_database(f"sqlite:///{workdir / 'stages-admit.db'}"))
    return [timed(lambda: router.admit("sales", 1, uid, raw))[0] for uid, raw in enumerate(raws, 1)]


def smtp_connect_stage(config, rounds: int = 30) -> list[float]:
    async def connect_quit() -> list[float]:
        out = []
        for _ in range(rounds):
            t = time.perf_counter()
            client = smtp_client(config.smtp.server)
            await client.connect()
            await client.quit()
            out.append((time.perf_counter() - t) * 1000)
        return out
    return asyncio.run(connect_quit())


def smtp_stage(forwards: list[tuple[str, bytes]], config) -> list[float]:
    async def send_all() -> list[float]:
        client = smtp_client(config.smtp.server)
        await client.connect()
        out = []
        for rcpt, payload in forwards:
            t = time.perf_counter()
            await client.sendmail(config.mailboxes[0].address, [rcpt], payload)
            out.append((time.perf_counter() - t) * 1000)
        await client.quit()
        return out
    return asyncio.run(send_all())


def imap_stages(bed, config, raws: list[bytes]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in ("imap_search", "imap_fetch_1", "imap_fetch_100",
                                                      "imap_file_1", "imap_file_100")}
    with LmtpSender(bed.lmtp_port) as lmtp:
        for raw in raws:
            lmtp.deliver(SALES, raw)
    conn = Mailbox.connect(imap_settings(config.mailboxes[0]))
    try:
        conn.select_inbox()
        conn.ensure_folders(["Bench/one", "Bench/batch"])
        for _ in range(20):
            ms, uids = timed(conn.unprocessed_uids)
            times["imap_search"].append(ms)
        for uid in uids:
            times["imap_fetch_1"].append(timed(lambda: list(conn.fetch([uid])))[0])
        for start in range(0, len(uids), 100):
            chunk = uids[start:start + 100]
            ms, _ = timed(lambda: list(conn.fetch(chunk)))
            times["imap_fetch_100"] += [ms / len(chunk)] * len(chunk)
        half = len(uids) // 2
        for uid in uids[:half]:  # one at a time, as when filing after each message
            times["imap_file_1"].append(timed(lambda: conn.file([uid], "Bench/one", ["mr-routed"]))[0])
        rest = uids[half:]
        for start in range(0, len(rest), 100):
            chunk = rest[start:start + 100]
            ms, _ = timed(lambda: conn.file(chunk, "Bench/batch", ["mr-routed"]))
            times["imap_file_100"] += [ms / len(chunk)] * len(chunk)
    finally:
        conn.logout()
    return times


# (file, function) of the round's parts, for the profile's per-stage table (cumulative seconds)
PROFILE_PARTS = (
    ("worker.py", "round", "whole round"),
    ("imap.py", "unprocessed_uids", "IMAP UID SEARCH"),
    ("imap.py", "fetch", "IMAP FETCH"),
    ("pipeline.py", "admit", "Router.admit (all below + DB)"),
    ("message.py", "parse_message", "  parse_message"),
    ("language.py", "detect", "    of which language detection"),
    ("decide.py", "decide", "  decide"),
    ("forward.py", "build_forward", "  build_forward"),
    ("record.py", "record_routed", "  registry record_routed"),
    ("store.py", "open_assignment_counts", "  open_assignment_counts"),
    ("outbox.py", "flush", "Outbox.flush (SMTP, incl. waiting)"),
    ("outbox.py", "_mark_sent", "  _mark_sent (one transaction per flush)"),
    ("worker.py", "_file", "filing (STORE + MOVE + DB)"),
)


def profile_parts(stats: pstats.Stats) -> list[tuple[str, int, float]]:
    found: dict[str, tuple[int, float]] = {}
    for (path, _line, func), (_cc, calls, _tt, cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        for file, name, label in PROFILE_PARTS:
            if func == name and path.endswith(file):
                n, c = found.get(label, (0, 0.0))
                found[label] = (n + calls, c + cum)
    return [(label, *found.get(label, (0, 0.0))) for _f, _n, label in PROFILE_PARTS]


def search_visibility(bed, config, tries: int = 3) -> dict[str, int]:
    """How often new mail is in the first UID SEARCH after delivery, bare and after a NOOP."""
    seen = {"first_search": 0, "noop_then_search": 0, "tries": tries}
    conn = Mailbox.connect(imap_settings(config.mailboxes[0]))
    try:
        conn.select_inbox()
        with LmtpSender(bed.lmtp_port) as lmtp:
            for i, sample in enumerate(bulk_samples(2 * tries, start=80_000)):
                before = len(conn.unprocessed_uids())
                lmtp.deliver(SALES, sample.raw, sample.envelope_from)
                time.sleep(0.01)
                if i % 2:
                    conn.noop()
                key = "noop_then_search" if i % 2 else "first_search"
                seen[key] += len(conn.unprocessed_uids()) > before
    finally:
        conn.logout()
    return seen


def empty_round_stage(config, rounds: int = 50) -> list[float]:
    """A round on an empty INBOX: in fast-poll mode the worker runs one every poll_interval."""
    sessions = open_database(config.database)
    worker = MailboxWorker(config.mailboxes[0], config, Router(config, sessions), Outbox(config, sessions),
                           threading.Event())
    conn = Mailbox.connect(imap_settings(worker.mailbox))
    try:
        uidvalidity = conn.select_inbox()
        conn.ensure_folders(worker._static_folders())
        worker.round(conn, uidvalidity)
        return [timed(lambda: worker.round(conn, uidvalidity))[0] for _ in range(rounds)]
    finally:
        conn.logout()


def profile_round(bed, workdir, count: int) -> dict[str, object]:
    """One catch-up round over a backlog, in this thread, under cProfile."""
    config = load(write_config(bed, workdir, mailboxes=["sales"]))
    with LmtpSender(bed.lmtp_port) as lmtp:
        for s in bulk_samples(count, start=70_000, attachment_every=10):
            lmtp.deliver(SALES, s.raw, s.envelope_from)
    sessions = open_database(config.database)
    router, outbox = Router(config, sessions), Outbox(config, sessions)
    worker = MailboxWorker(config.mailboxes[0], config, router, outbox, threading.Event())
    conn = Mailbox.connect(imap_settings(worker.mailbox))
    try:
        uidvalidity = conn.select_inbox()
        conn.ensure_folders(worker._static_folders())
        parse_message(bulk_samples(1)[0].raw, config.parse)  # warm, as a running daemon is
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.runcall(worker.round, conn, uidvalidity)
        elapsed = time.perf_counter() - started
    finally:
        conn.logout()
    path = RESULTS / "stages.pstats"
    RESULTS.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(path)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(25)
    print(f"\ncProfile of one round over {count} inquiries: {elapsed:.1f}s "
          f"({count / elapsed:.0f} msg/s under the profiler); {path}")
    print(out.getvalue())
    parts = profile_parts(pstats.Stats(profiler))
    print_table(("part of the round (cProfile, cumulative)", "calls", "seconds", "ms/message"),
                [(label, calls, cum, cum * 1000 / count) for label, calls, cum in parts])
    print()
    return {"count": count, "seconds": elapsed, "pstats": str(path), "top25_cumulative": out.getvalue(),
            "parts_s": {label: cum for label, _calls, cum in parts}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="bulk inquiries besides the demo samples")
    parser.add_argument("--profile", action="store_true", help="also profile one backlog round")
    parser.add_argument("--profile-count", type=int, default=1000)
    args = parser.parse_args()

    raws = [s.raw for s in demo_samples()] + [s.raw for s in bulk_samples(args.count, start=60_000,
                                                                          attachment_every=10)]
    result = envelope(messages=len(raws))
    with test_bed() as (bed, workdir):
        config = load(write_config(bed, workdir))
        times, forwards = pure_stages(raws, config)
        times["admit"] = admit_stage(raws, config, workdir)
        times["smtp_connect"] = smtp_connect_stage(config)
        times["smtp_send"] = smtp_stage(forwards, config)
        times.update(imap_stages(bed, config, raws))
        times["empty_round"] = empty_round_stage(config)
        result["search_visibility"] = search_visibility(bed, config)
        if args.profile:
            result["profile"] = profile_round(bed, workdir, args.profile_count)
    result["stages_ms"] = {name: summary(values, (50, 95)) for name, values in times.items()}
    result["load_after"] = load_average()
    print_table(("stage", "n", "p50 ms", "p95 ms", "max ms"),
                [(name, s["n"], s["p50"], s["p95"], s["max"]) for name, s in result["stages_ms"].items()])
    v = result["search_visibility"]
    print(f"\nnew mail in the first UID SEARCH after delivery: {v['first_search']}/{v['tries']}; "
          f"after a NOOP: {v['noop_then_search']}/{v['tries']}")
    print(f"load: before {result['load_before']}, after {result['load_after']}")
    write_result("stages", result)


if __name__ == "__main__":
    main()
