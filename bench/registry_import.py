"""Time and peak memory of `registry import` on a big trade-show list, run by hand:

    .venv/bin/python bench/registry_import.py [--rows 200000] [--bad 0.0] [--tree PATH]

Writes a UTF-8 CSV of ROWS contacts (an email each, a company, a phone, a country; every
50th row repeats an earlier company to exercise merging; a --bad share of rows with a broken
email), then imports it into a fresh SQLite file in a child process running the `mailrouter`
package found under --tree (default: this checkout), and prints wall time, the child's CPU
time (the fair figure on a shared machine) and its peak RSS. Run it with --tree pointing at an
older checkout to compare.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import sys
from datetime import datetime, timezone
from pathlib import Path
from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS
from mailrouter.registry.importer import import_file
from mailrouter.store import open_database
with open_database("sqlite:///" + sys.argv[2])() as s:
    r = import_file(s, Path(sys.argv[1]), source="bench", owner_aliases={"li": "li"},
                    free_mail_domains=DEFAULT_FREE_MAIL_DOMAINS,
                    now=datetime(2026, 12, 4, tzinfo=timezone.utc), owner="li")
    s.commit()
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(r.created, r.updated, r.unchanged, len(r.invalid), hwm)
"""
COUNTRIES = ("DE", "FR", "ES", "IT", "US", "GB", "BR", "RU", "CN", "JP")


def write_csv(path: Path, rows: int, bad: float) -> None:
    every = round(1 / bad) if bad else 0
    with path.open("w", encoding="utf-8", newline="") as out:
        w = csv.writer(out)
        w.writerow(["Name", "Email", "Company", "Phone", "Country"])
        for i in range(rows):
            company = f"Company {i - i % 50 if i % 50 == 49 else i} GmbH"
            email = f"buyer{i}@@firm{i}" if every and i % every == 0 else f"buyer{i}@firm{i}.example"
            w.writerow([f"Contact {i}", email, company, f"+49 30 {1000000 + i:07d}",
                        COUNTRIES[i % len(COUNTRIES)]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--bad", type=float, default=0.0, help="share of rows with a broken email")
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose mailrouter to run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sheet, db = Path(tmp) / "list.csv", Path(tmp) / "r.db"
        write_csv(sheet, args.rows, args.bad)
        env = {**os.environ, "PYTHONPATH": str(args.tree.resolve())}
        start = time.perf_counter()
        # cwd: `python -c` puts the working directory before PYTHONPATH on sys.path
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(sheet), str(db)], env=env,
                                cwd=tmp, stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read() if proc.stdout else ""
        _, status, child = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"the import failed with exit status {proc.returncode}")
        *counts, hwm = out.split()
        # the child's own high-water mark, read from /proc by the child itself
        print(f"tree {args.tree}: {args.rows:,} rows ({sheet.stat().st_size / 2**20:.1f} MiB, "
              f"{args.bad:.0%} bad) in {seconds:.1f} s wall, {child.ru_utime + child.ru_stime:.1f} s "
              f"CPU, peak RSS {int(hwm) / 1024:.0f} MiB; created/updated/unchanged/invalid "
              f"{' '.join(counts)}")


if __name__ == "__main__":
    main()
