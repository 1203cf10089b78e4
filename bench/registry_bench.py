"""Registry performance, run by hand: `python bench/registry_bench.py [--customers N]`.

Builds a registry of 200,000 customers in a temporary SQLite file, times `match_sender` per
call (p50/p99 over 2,000 lookups of each kind) and the import of a 100,000-row CSV, prints a
table and writes bench/results/registry.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy
from sqlalchemy import insert
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailrouter.model import Inquiry  # noqa: E402
from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS  # noqa: E402
from mailrouter.registry.importer import import_file  # noqa: E402
from mailrouter.registry.match import match_sender  # noqa: E402
from mailrouter.registry.models import (CustomerDomainRow, CustomerEmailRow,  # noqa: E402
                                        CustomerPhoneRow, CustomerRow)
from mailrouter.registry.normalise import company_key  # noqa: E402
from mailrouter.store import open_database  # noqa: E402

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
LOOKUPS = 2000
RESULTS = Path(__file__).resolve().parent / "results" / "registry.json"
BASE = Inquiry(message_id="<b@x>", subject="Inquiry", from_address="", sender="", sender_name="",
               reply_to="", domain="", country="DE", free_mail=False, recipients=(), text="Please quote.",
               signature="", language="en", language_confidence=1.0, products=(), attachments=(),
               date=None)


def phone(i: int) -> str:
    """A valid German mobile number per customer (+49 151 then 8 digits)."""
    return f"+49151{i:08d}"


def word(i: int) -> str:
    """A distinct pronounceable-enough name per number (company names rarely hold long numbers)."""
    letters = ""
    while True:
        i, r = divmod(i, 26)
        letters += "abcdefghijklmnopqrstuvwxyz"[r]
        if i == 0:
            return letters.capitalize()


def build(session: Session, n: int) -> None:
    """Bulk-insert n customers with an email, a corporate domain and a phone each."""
    step = 20_000
    for start in range(0, n, step):
        ids = range(start + 1, min(start + step, n) + 1)
        session.execute(insert(CustomerRow), [dict(
            id=i, company=f"{word(i)} Maschinen GmbH",
            company_key=company_key(f"{word(i)} Maschinen GmbH"),
            country="DE", owner=f"rep{i % 12}", source="bench", first_seen=NOW,
            last_contact=NOW, owner_since=NOW) for i in ids])
        session.execute(insert(CustomerEmailRow), [dict(customer_id=i, email=f"buyer@c{i}.de") for i in ids])
        session.execute(insert(CustomerDomainRow), [dict(customer_id=i, domain=f"c{i}.de") for i in ids])
        session.execute(insert(CustomerPhoneRow), [dict(customer_id=i, e164=phone(i)) for i in ids])
    session.commit()


def inquiries(kind: str, i: int) -> Inquiry:
    if kind == "email":
        return replace(BASE, sender=f"buyer@c{i}.de", domain=f"c{i}.de")
    if kind == "domain":
        return replace(BASE, sender=f"colleague@c{i}.de", domain=f"c{i}.de")
    if kind == "company+phone":
        return replace(BASE, sender=f"b{i}@gmail.com", domain="gmail.com", free_mail=True,
                       signature=f"Hans\n{word(i)} Maschinen\nMobile: 0151 {i:08d}")
    return replace(BASE, sender=f"new{i}@unknown{i}.de", domain=f"unknown{i}.de",  # no match
                   signature=f"Ann\nNew {i} Ltd\nTel: 0151 9{i:07d}")


def time_matches(session: Session, kind: str, n: int) -> dict[str, float]:
    step = max(1, n // LOOKUPS)
    samples = []
    for i in range(1, n + 1, step)[:LOOKUPS]:
        inquiry = inquiries(kind, i)
        t0 = time.perf_counter()
        found = match_sender(session, inquiry, DEFAULT_FREE_MAIL_DOMAINS, NOW, 180)
        samples.append((time.perf_counter() - t0) * 1000)
        assert (found is None) == (kind == "miss"), (kind, i)
        assert kind == "miss" or (found is not None and found.how == kind and found.customer_id == i)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 3),
            "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 3), "lookups": len(samples)}


def time_import(session: Session, folder: Path, rows: int) -> dict[str, float]:
    path = folder / "import.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Name", "Email", "Company", "Phone", "Country"])
        for i in range(rows):
            writer.writerow([f"Buyer {i}", f"buyer@imp{i}.com", f"{word(i)} Importadora S.A.",
                             f"+49 152 {i:08d}", "DE"])
    t0 = time.perf_counter()
    result = import_file(session, path, source="bench", owner_aliases={}, now=NOW,
                         free_mail_domains=DEFAULT_FREE_MAIL_DOMAINS)
    session.commit()
    seconds = time.perf_counter() - t0
    assert result.created == rows and not result.invalid, result
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_second": round(rows / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--import-rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with open_database(f"sqlite:///{folder / 'bench.db'}")() as session:
            t0 = time.perf_counter()
            build(session, args.customers)
            built = time.perf_counter() - t0
            matches = {k: time_matches(session, k, args.customers)
                       for k in ("email", "domain", "company+phone", "miss")}
            imported = time_import(session, folder, args.import_rows)
    report = {"customers": args.customers, "build_seconds": round(built, 1), "match": matches,
              "import": imported, "python": platform.python_version(),
              "sqlalchemy": sqlalchemy.__version__, "machine": platform.machine(),
              "when": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    print_table(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {RESULTS}")


def print_table(report: dict) -> None:
    print(f"registry of {report['customers']:,} customers (built in {report['build_seconds']} s)")
    print(f"{'match_sender':<16}{'p50 ms':>10}{'p99 ms':>10}{'lookups':>10}")
    for kind, m in report["match"].items():
        print(f"{kind:<16}{m['p50_ms']:>10.3f}{m['p99_ms']:>10.3f}{m['lookups']:>10}")
    imp = report["import"]
    print(f"import {imp['rows']:,} CSV rows: {imp['seconds']} s ({imp['rows_per_second']:,} rows/s)")


if __name__ == "__main__":
    main()
