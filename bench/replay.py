"""Hostile mail replayed through the real daemon (issue 14's done-when), run by hand:

    python bench/replay.py [--set main poison slow memory] [--timeout 600]

Per set: a fresh test bed, the daemon as a subprocess with the example config (sales@ only,
parser process on), one ordinary inquiry alone first (the usual latency), then the set's
messages delivered back to back over LMTP, each hostile one followed by an ordinary inquiry
(its sentinel). Reported per set: delivered, filed, lost (delivered but never filed), outcomes,
the sentinels' arrival -> forward latency against the usual one, the longest time a hostile
message took from arrival to filed, tracebacks in the daemon's log, forwards carrying a header
injected from customer text, and the peak RSS of the daemon and of its parser process.
Messages come from mailrouter/testing/hostile.py. Writes bench/results/replay.json.
"""
from __future__ import annotations

import argparse
import re
import smtplib
import threading
import time
from collections import Counter

from common import (SALES, DaemonProcess, LmtpSender, envelope, load, mib, print_table, sessions_for,
                    test_bed, write_config, write_result)
from sqlalchemy import select

from mailrouter.store import FILED, MessageRow
from mailrouter.testing.hostile import SETS, Hostile, replay_order, sentinel

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.I | re.M)


def message_id(raw: bytes) -> str:
    found = _MESSAGE_ID.search(raw)
    return found.group(1).decode() if found else ""


class PeakWatcher(threading.Thread):
    """Samples the parser process's peak RSS while the set runs (it may be replaced)."""

    def __init__(self, daemon: DaemonProcess) -> None:
        super().__init__(daemon=True)
        self.process, self.children_peak_kib, self.done = daemon, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            try:
                for child in self.process.children_status().values():
                    self.children_peak_kib = max(self.children_peak_kib, int(child["VmHWM"]))
            except (FileNotFoundError, ProcessLookupError):
                pass


def rows_by_id(sessions, ids: list[str]) -> dict[str, MessageRow]:
    with sessions() as session:
        rows = session.scalars(select(MessageRow).where(MessageRow.message_id.in_(ids))).all()
    return {r.message_id: r for r in rows}


def wait_filed(sessions, ids: list[str], timeout: float, daemon: DaemonProcess) -> dict[str, MessageRow]:
    deadline = time.monotonic() + timeout
    while True:
        rows = rows_by_id(sessions, ids)
        if all(i in rows and rows[i].state == FILED for i in ids) or time.monotonic() > deadline:
            return rows
        daemon.check_alive()
        time.sleep(0.2)


def forward_latency(row: MessageRow | None, delivered: float) -> float | None:
    return row.sent_at.timestamp() - delivered if row is not None and row.sent_at else None


def injected_forwards(bed, config) -> int:
    """Forwards whose own header block (before the attached original) names X-Injected."""
    count = 0
    for rep in config.reps.values():
        for raw in bed.fetch_all(rep.email):
            head = raw.split(b"\r\n\r\n", 1)[0]
            count += bool(re.search(rb"^X-Injected:", head, re.I | re.M))
    return count


def replay_set(name: str, timeout: float) -> dict[str, object]:
    messages = replay_order(name)
    with test_bed() as (bed, workdir):
        config_path = write_config(bed, workdir, mailboxes=["sales"])
        config = load(config_path)
        sessions = sessions_for(config)
        with DaemonProcess(config_path, workdir / "daemon.log") as daemon, LmtpSender(bed.lmtp_port) as lmtp:
            daemon.wait_connected(["sales"])
            warm = sentinel(1)
            start = time.time()
            lmtp.deliver(SALES, warm.raw, "buyer@weber-armaturen.de")
            usual = forward_latency(wait_filed(sessions, [message_id(warm.raw)], 60, daemon).get(
                message_id(warm.raw)), start)
            watcher = PeakWatcher(daemon)
            watcher.start()
            delivered: dict[str, tuple[Hostile, float]] = {}
            refused: list[str] = []
            for item in messages:
                try:
                    lmtp.deliver(SALES, item.raw, "buyer@weber-armaturen.de")
                    delivered[message_id(item.raw)] = (item, time.time())
                except smtplib.SMTPException as exc:  # the mail server itself refused it: not ours to route
                    refused.append(f"{item.case}: {exc}")
            rows = wait_filed(sessions, list(delivered), timeout, daemon)
            watcher.done.set()
            daemon_peak = daemon.status()["VmHWM"]
            log = daemon.log_path.read_text(errors="replace")
        injected = injected_forwards(bed, config)

    sentinels = [forward_latency(rows.get(i), t) for i, (h, t) in delivered.items() if h.sentinel]
    slowest = max(((rows[i].filed_at.timestamp() - t, h.case) for i, (h, t) in delivered.items()
                   if not h.sentinel and i in rows and rows[i].filed_at), default=(0.0, "-"))
    filed = sum(1 for i in delivered if i in rows and rows[i].state == FILED)
    return {
        "set": name, "delivered": len(delivered), "refused_by_server": refused, "filed": filed,
        "lost": len(delivered) - filed,
        "outcomes": dict(Counter(rows[i].outcome for i in delivered if i in rows)),
        "usual_latency_s": round(usual or float("nan"), 2),
        "sentinel_latency_max_s": round(max((s for s in sentinels if s is not None), default=float("nan")), 2),
        "sentinels_not_forwarded": sum(1 for s in sentinels if s is None),
        "slowest_hostile_s": round(slowest[0], 1), "slowest_case": slowest[1],
        "tracebacks": log.count("Traceback"), "injected_headers": injected,
        "daemon_peak_mib": round(mib(daemon_peak), 1), "parser_peak_mib": round(mib(watcher.children_peak_kib), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for a set to be filed")
    args = parser.parse_args()
    results = [replay_set(name, args.timeout) for name in args.set]
    print_table(["set", "delivered", "filed", "lost", "usual s", "sentinel max s", "slowest hostile s (case)",
                 "tracebacks", "injected", "daemon MiB", "parser MiB"],
                [[r["set"], r["delivered"], r["filed"], r["lost"], r["usual_latency_s"], r["sentinel_latency_max_s"],
                  f'{r["slowest_hostile_s"]} ({r["slowest_case"]})', r["tracebacks"], r["injected_headers"],
                  r["daemon_peak_mib"], r["parser_peak_mib"]] for r in results])
    for r in results:
        print(f'{r["set"]}: outcomes {r["outcomes"]}' + (f'; refused by the server: {r["refused_by_server"]}'
                                                         if r["refused_by_server"] else ""))
    write_result("replay", envelope(results=results))


if __name__ == "__main__":
    main()
