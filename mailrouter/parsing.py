"""The parse stage on the second core: a worker process parses the next fetched batch while
the mailbox thread records the current one.

Parsing (MIME, HTML to text, langdetect) is half of a message's CPU and pure, so it moves
to a child process (`daemon.parse_workers`, 1 by default; 0 parses in the mailbox thread).
The child also isolates the daemon from a message that crashes a parser outright: when the
child dies, the batch is parsed again one message at a time in a fresh child, and a message
that kills that one too is quarantined.
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Protocol, Sequence

from .model import Inquiry, ParseSettings
from .parse import UnreadableMessage, parse_message

log = logging.getLogger("mailrouter.parse")


@dataclass(frozen=True)
class Parsed:
    """One message's parse: the Inquiry, or why there is none (the message is quarantined)."""

    inquiry: Inquiry | None
    problem: str = ""


def parse_one(raw: bytes, settings: ParseSettings) -> Parsed:
    try:
        return Parsed(parse_message(raw, settings))
    except UnreadableMessage as exc:
        return Parsed(None, f"unreadable: {exc}")
    except Exception as exc:  # a parser bug must not stop the daemon: keep the message aside
        log.exception("parser failed")
        return Parsed(None, f"parser error: {type(exc).__name__}: {exc}")


def parse_all(raws: Sequence[bytes], settings: ParseSettings) -> list[Parsed]:
    return [parse_one(raw, settings) for raw in raws]


class Parser(Protocol):
    def submit(self, raws: Sequence[bytes], settings: ParseSettings) -> "Future[list[Parsed]]": ...
    def close(self) -> None: ...


class InlineParser:
    """Parses in the calling thread (`parse_workers = 0`, tests, one-off commands)."""

    def submit(self, raws: Sequence[bytes], settings: ParseSettings) -> "Future[list[Parsed]]":
        future: Future[list[Parsed]] = Future()
        future.set_result(parse_all(raws, settings))
        return future

    def close(self) -> None:
        pass


def _warm_up() -> None:
    """Load the language profiles and lazy imports before the first real batch."""
    from .samples import bulk_samples
    parse_one(bulk_samples(1)[0].raw, ParseSettings(free_mail_domains=frozenset()))


MIN_BATCH = 8  # fewer messages are parsed in the calling thread: no process, no round trip
IDLE_EXIT = 120.0  # seconds without a batch after which the worker processes exit


class ProcessParser:
    """Batches go to worker processes, started when a backlog comes and ended when it is gone;
    results come back in order as a Future. A lone new message is parsed in the calling
    thread: quicker than a round trip, and a quiet daemon is a single process.

    The workers come from a fork server that imported only the parse stage: not forked from
    the daemon (threads, open database connections), not re-running its main module.
    """

    def __init__(self, workers: int = 1, min_batch: int = MIN_BATCH, idle_exit: float = IDLE_EXIT):
        self.workers = workers
        self.min_batch = min_batch
        self.idle_exit = idle_exit
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._idle_timer: threading.Timer | None = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            self._idle_timer = threading.Timer(self.idle_exit, self._exit_if_idle)
            self._idle_timer.daemon = True
            self._idle_timer.start()
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])
                self._pool = ProcessPoolExecutor(self.workers, context, initializer=_warm_up)
            return self._pool

    def _exit_if_idle(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)  # lets a batch still in hand finish first
            log.debug("parser processes ended after %.0fs without a backlog", self.idle_exit)

    @property
    def running(self) -> bool:
        return self._pool is not None

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def submit(self, raws: Sequence[bytes], settings: ParseSettings) -> "Future[list[Parsed]]":
        if len(raws) < self.min_batch:
            return InlineParser().submit(raws, settings)
        outer: Future[list[Parsed]] = Future()
        pool = self._executor()
        try:
            inner = pool.submit(parse_all, list(raws), settings)
        except (BrokenProcessPool, RuntimeError):
            self._replace(pool)
            outer.set_result(self._one_by_one(raws, settings))
            return outer

        def done(f: "Future[list[Parsed]]") -> None:
            try:
                outer.set_result(f.result())
            except BrokenProcessPool:
                log.warning("the parser process died on a batch of %d; parsing it message by message",
                            len(raws))
                self._replace(pool)
                threading.Thread(target=lambda: outer.set_result(self._one_by_one(raws, settings)),
                                 name="parse-retry", daemon=True).start()
            except Exception as exc:  # pickling trouble and the like: parse here instead
                log.warning("parser process failed (%s); parsing in the daemon", exc)
                outer.set_result(parse_all(raws, settings))

        inner.add_done_callback(done)
        return outer

    def _one_by_one(self, raws: Sequence[bytes], settings: ParseSettings) -> list[Parsed]:
        results = []
        for raw in raws:
            pool = self._executor()
            try:
                results.append(pool.submit(parse_one, raw, settings).result())
            except BrokenProcessPool:
                self._replace(pool)
                results.append(Parsed(None, "parser crashed on this message (its process died)"))
        return results

    def close(self) -> None:
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


def make_parser(workers: int) -> Parser:
    return ProcessParser(workers) if workers > 0 else InlineParser()
