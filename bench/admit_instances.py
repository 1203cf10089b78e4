"""What the cross-instance assignment lock costs, run by hand:
`python bench/admit_instances.py [--count 400] [--batch 20]`.

On a throwaway PostgreSQL, `--count` distinct inquiries for the round-robin team europe are
parsed beforehand, then admitted (recorded, assigned, forward queued: act/admit.py) in batches
of `--batch`: by one Router, and by two Routers at once (two instances, one mailbox each), with
the lock (store.hold_assignment_lock) and, for comparison only, without it. Prints messages/s and
whether the team's rotation came out strict. No IMAP, no SMTP: the database side alone.
"""
from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import replace
from unittest import mock

from common import EXAMPLE_CONFIG, print_table
from sqlalchemy import select

from mailrouter import store
from mailrouter.act.admit import Router
from mailrouter.config.load import load_config
from mailrouter.parse.process import parse_one
from mailrouter.store import AssignmentRow, close_database, open_database
from mailrouter.testing.postgres import ThrowawayPostgres
from mailrouter.testing.samples import FRENCH, compose

ENV = {"MAILROUTER_SALES_PASSWORD": "s", "MAILROUTER_INFO_PASSWORD": "i", "MAILROUTER_SMTP_PASSWORD": "p"}


def inquiries(count: int, start: int) -> list[bytes]:
    return [compose(f"Buyer {i} <buyer{i}@maison{i}.fr>", f"Demande #{i}", f"{FRENCH}\n\nRef. {i}", n=i)
            for i in range(start, start + count)]


def admit_all(router: Router, mailbox: str, raws: list[bytes], batch: int, go: threading.Barrier) -> None:
    parsed = [parse_one(raw, router.config.parse) for raw in raws]
    go.wait()
    for at in range(0, len(raws), batch):
        done: Future = Future()
        done.set_result(parsed[at:at + batch])
        router.admit_batch(mailbox, 1, [(at + i + 1, raw) for i, raw in enumerate(raws[at:at + batch])],
                           parsing=done)


def run(server: ThrowawayPostgres, instances: int, count: int, batch: int) -> tuple[float, bool]:
    """Messages admitted per second, and whether the rotation was strict."""
    url = server.new_database()
    config = replace(load_config(EXAMPLE_CONFIG, environ=ENV), database=url)
    each = count // instances
    go = threading.Barrier(instances + 1)
    threads = [threading.Thread(target=admit_all, args=(Router(config, open_database(url)), name,
                                                        inquiries(each, n * each), batch, go))
               for n, name in enumerate(("sales", "info")[:instances])]
    for thread in threads:
        thread.start()
    go.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    with open_database(url)() as session:
        reps = list(session.scalars(select(AssignmentRow.rep).order_by(AssignmentRow.id)))
    close_database(url)
    return each * instances / elapsed, all(a != b for a, b in zip(reps, reps[1:]))


@contextmanager
def without_lock() -> Iterator[None]:
    with mock.patch.object(store, "hold_assignment_lock", lambda session: None):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    server = ThrowawayPostgres(durable=True).start()
    try:
        rows = []
        for label, instances, patched in (("1 instance", 1, False), ("2 instances, lock", 2, False),
                                          ("2 instances, no lock (before)", 2, True)):
            if patched:
                with without_lock():
                    rate, strict = run(server, instances, args.count, args.batch)
            else:
                rate, strict = run(server, instances, args.count, args.batch)
            rows.append((label, f"{rate:.0f}", "yes" if strict else "NO"))
        print_table(("admission", "msg/s", "strict rotation"), rows)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
