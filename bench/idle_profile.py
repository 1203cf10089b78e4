"""Where an idle daemon watching many mailboxes spends its CPU, run by hand:
`python bench/idle_profile.py [--mailboxes 50] [--window 60] [--limit 100]`.

Creates --mailboxes users on the test bed, a config watching each as a shared mailbox (IDLE,
the example config otherwise), starts `run.py run`, waits until every mailbox is connected,
then samples the process with py-spy (in the venv) for --window seconds while nothing arrives.
Prints idle CPU per minute (utime + stime, /proc) and, per sample, the deepest mailrouter
function on the stack: what the idle CPU is made of. py-spy counts a thread blocked in
poll() as active (imapclient's IDLE wait), so samples whose innermost frame is such a wait
are shown apart as "waiting", not as CPU. Writes bench/results/idle_profile.json.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import (DaemonProcess, envelope, load_average, mailboxes_config, print_table, test_bed,
                    write_result)

# innermost frames of a thread that waits in a system call (py-spy's idle heuristic misses them);
# _readable is the IDLE wait on the socket and the waker together (intake/imap.py)
WAITING = {"_poll_socket", "_readable", "readinto", "wait", "select", "poll", "recv"}


def attribute(raw_lines: list[str]) -> tuple[Counter[str], int, int]:
    """py-spy raw lines ("frame;frame;... count") -> samples per deepest mailrouter frame
    outside the store layer (so a query is charged to who asked), the samples that were only
    waiting, and the busy samples spent opening or closing a database connection."""
    where: Counter[str] = Counter()
    waiting = connecting = 0
    for line in raw_lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if frames[-1].split(" (")[0].split(".")[-1] in WAITING:
            waiting += int(count)
            continue
        if any(f.startswith(("Pool._create_connection", "DefaultDialect.do_close")) for f in frames):
            connecting += int(count)
        ours = [f.split(" (")[0] for f in frames if "mailrouter/" in f and "mailrouter/store.py" not in f]
        where[ours[-1] if ours else frames[-1].split(" (")[0]] += int(count)
    return where, waiting, connecting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=50)
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

    users = [f"box{i}@example.com" for i in range(1, args.mailboxes + 1)]
    result = envelope(mailboxes=args.mailboxes, limit=args.limit, window_s=args.window)
    with test_bed(users) as (bed, workdir), tempfile.TemporaryDirectory() as scratch:
        path = mailboxes_config(bed, workdir, users, max_connections_per_server=args.limit)
        raw = Path(scratch) / "idle.txt"
        with DaemonProcess(path, workdir / "daemon.log") as daemon:
            daemon.wait_connected([u.split("@")[0] for u in users], timeout=600)
            time.sleep(10)  # the first rounds' folder creation settles
            cpu_before, t_before = daemon.cpu_seconds(), time.monotonic()
            # --nonblocking: never pause the daemon, so the CPU figure is its own
            subprocess.run([py_spy, "record", "-p", str(daemon.pid), "-d", str(args.window), "-r", "50",
                            "-f", "raw", "-o", str(raw), "--nonblocking"], check=True, capture_output=True)
            cpu, window = daemon.cpu_seconds() - cpu_before, time.monotonic() - t_before
            daemon.check_alive()
        where, waiting, connecting = attribute(raw.read_text().splitlines())
    busy = sum(where.values())
    result["connect_share"] = round(connecting / busy, 3) if busy else 0.0  # a quiet window: no busy sample
    result["idle_cpu_s_per_min"] = round(cpu / window * 60, 2)
    result["samples_busy"], result["samples_waiting"] = busy, waiting
    result["busy_share"] = {k: round(v / busy, 3) for k, v in where.most_common(15)}
    result["load_after"] = load_average()
    print(f"{args.mailboxes} mailboxes, limit {args.limit}: idle CPU {result['idle_cpu_s_per_min']} s/min; "
          f"{busy} busy samples ({waiting} waiting in poll/recv left out); "
          f"{result['connect_share']:.0%} of them opening/closing a database connection")
    print_table(["deepest mailrouter frame", "samples", "share"],
                [[k, v, f"{v / busy:.0%}"] for k, v in where.most_common(15)])
    print("written to", write_result("idle_profile", result))


if __name__ == "__main__":
    main()
