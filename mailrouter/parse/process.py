"""The parse stage on the second core: a worker process parses the next fetched batch while
the mailbox thread records the current one.

Parsing (MIME, HTML to text, langdetect) is half of a message's CPU and pure, so it moves
to a child process (`daemon.parse_workers`, 1 by default; 0 parses in the mailbox thread).
The child also isolates the daemon from a message that crashes a parser outright: when the
child dies, the batch is parsed again one message at a time in a fresh child, and a message
that kills that one too is quarantined.

The child is `python -m mailrouter.parse.process`, fed pickled batches on stdin and answering on
stdout: it imports only the parse stage (not the daemon's main module, as multiprocessing's
workers would), and it ends by itself when the daemon is gone, however it died (EOF).
"""
from __future__ import annotations

import itertools
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, Sequence

from mailrouter.intake.fingerprint import content_key, raw_sha256
from mailrouter.model import Inquiry, ParseSettings
from mailrouter.parse import UnreadableMessage, parse_message
from mailrouter.registry.keys import SenderKeys, inquiry_keys

log = logging.getLogger("mailrouter.parse")


@dataclass(frozen=True)
class Parsed:
    """One message's parse: the Inquiry, or why there is none (the message is quarantined),
    with the other pure work on its bytes done in the same place."""

    inquiry: Inquiry | None
    problem: str = ""
    sha256: str = ""  # fingerprint.raw_sha256
    content_key: str = ""  # fingerprint.content_key
    size: int = 0  # octets
    sender_keys: SenderKeys | None = None  # what the registry will look the sender up by


def parse_one(raw: bytes, settings: ParseSettings) -> Parsed:
    sha, key = raw_sha256(raw), content_key(raw)
    try:
        inquiry = parse_message(raw, settings)
    except UnreadableMessage as exc:
        return Parsed(None, f"unreadable: {exc}", sha, key, len(raw))
    except Exception as exc:  # a parser bug must not stop the daemon: keep the message aside
        log.exception("parser failed")
        return Parsed(None, f"parser error: {type(exc).__name__}: {exc}", sha, key, len(raw))
    try:
        keys = inquiry_keys(inquiry, settings.free_mail_domains)
    except Exception:  # the registry looks again itself; the message is not at fault
        log.exception("sender keys failed")
        keys = None
    return Parsed(inquiry, "", sha, key, len(raw), keys)


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
    from mailrouter.testing.samples import bulk_samples
    parse_one(bulk_samples(1)[0].raw, ParseSettings(free_mail_domains=frozenset()))


MIN_BATCH = 8  # fewer messages are parsed in the calling thread: no process, no round trip
IDLE_EXIT = 120.0  # seconds without a batch after which the worker processes exit
_FRAME = struct.Struct("!Q")


class WorkerDied(Exception):
    """The parser process ended (killed, crashed) before answering."""


def _write_frame(out: BinaryIO, data: bytes) -> None:
    out.write(_FRAME.pack(len(data)))
    out.write(data)
    out.flush()


def _read_frame(source: BinaryIO) -> bytes | None:
    head = source.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    data = source.read(size)
    return data if len(data) == size else None


class WorkerProcess:
    """One parser child; batches are answered in the order they were sent."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
        self.process = subprocess.Popen([sys.executable, "-m", "mailrouter.parse.process"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._pending: deque[Future[list[Parsed]]] = deque()
        self._lock = threading.Lock()
        self.alive = True
        threading.Thread(target=self._read_answers, name=f"parser-{self.process.pid}", daemon=True).start()

    def submit(self, raws: Sequence[bytes], settings: ParseSettings) -> "Future[list[Parsed]]":
        future: Future[list[Parsed]] = Future()
        frame = pickle.dumps((list(raws), settings), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if not self.alive:
                future.set_exception(WorkerDied("the parser process has ended"))
                return future
            self._pending.append(future)
            try:
                _write_frame(self.process.stdin, frame)
            except (BrokenPipeError, OSError, ValueError):
                pass  # the reader sees the EOF and fails everything pending, this one included
        return future

    def _read_answers(self) -> None:
        while (frame := _read_frame(self.process.stdout)) is not None:
            with self._lock:
                future = self._pending.popleft()
            try:
                future.set_result(pickle.loads(frame))
            except Exception as exc:  # noqa: BLE001 (handed to the waiting caller)
                future.set_exception(exc)
        code = self.process.wait()
        self.process.stdout.close()
        with self._lock:
            self.alive = False
            try:
                self.process.stdin.close()
            except OSError:
                pass
            pending, self._pending = list(self._pending), deque()
        for future in pending:
            future.set_exception(WorkerDied(f"the parser process ended with status {code}"))

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def close(self, timeout: float = 30.0) -> None:
        """Let it finish what it has, then end it (EOF on its stdin)."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        self.process.kill()


class ProcessParser:
    """Batches go to parser processes, started when a backlog comes and ended when it is gone;
    results come back in order as a Future. A lone new message is parsed in the calling
    thread: quicker than a round trip, and a quiet daemon is a single process."""

    def __init__(self, workers: int = 1, min_batch: int = MIN_BATCH, idle_exit: float = IDLE_EXIT):
        self.workers = workers
        self.min_batch = min_batch
        self.idle_exit = idle_exit
        self._procs: list[WorkerProcess] = []
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._idle_timer: threading.Timer | None = None

    def _worker(self) -> WorkerProcess:
        with self._lock:
            self._restart_idle_timer()
            self._procs = [p for p in self._procs if p.alive]
            if len(self._procs) < self.workers:
                self._procs.append(WorkerProcess())
            return self._procs[next(self._turn) % len(self._procs)]

    def _restart_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = threading.Timer(self.idle_exit, self._exit_if_idle)
        self._idle_timer.daemon = True
        self._idle_timer.start()

    def _exit_if_idle(self) -> None:
        with self._lock:
            if any(p.busy for p in self._procs):
                self._restart_idle_timer()
                return
            procs, self._procs = self._procs, []
        for proc in procs:
            proc.close()
        if procs:
            log.debug("parser processes ended after %.0fs without a backlog", self.idle_exit)

    @property
    def running(self) -> bool:
        return any(p.alive for p in self._procs)

    def submit(self, raws: Sequence[bytes], settings: ParseSettings) -> "Future[list[Parsed]]":
        if len(raws) < self.min_batch:
            return InlineParser().submit(raws, settings)
        outer: Future[list[Parsed]] = Future()

        def done(inner: "Future[list[Parsed]]") -> None:
            try:
                outer.set_result(inner.result())
            except WorkerDied:
                log.warning("the parser process died on a batch of %d; parsing it message by message",
                            len(raws))
                threading.Thread(target=lambda: outer.set_result(self._one_by_one(raws, settings)),
                                 name="parse-retry", daemon=True).start()
            except Exception as exc:  # an answer that would not unpickle, say: parse here instead
                log.warning("parser process failed (%s); parsing in the daemon", exc)
                outer.set_result(parse_all(raws, settings))

        self._worker().submit(raws, settings).add_done_callback(done)
        return outer

    def _one_by_one(self, raws: Sequence[bytes], settings: ParseSettings) -> list[Parsed]:
        results = []
        for raw in raws:
            try:
                results.append(self._worker().submit([raw], settings).result()[0])
            except WorkerDied:
                results.append(Parsed(None, "parser crashed on this message (its process died)"))
        return results

    def close(self) -> None:
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            procs, self._procs = self._procs, []
        for proc in procs:
            proc.close()


def make_parser(workers: int) -> Parser:
    return ProcessParser(workers) if workers > 0 else InlineParser()


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The parser process: answer each pickled (raws, settings) with its parses, until EOF."""
    _warm_up()
    while (frame := _read_frame(requests)) is not None:
        raws, settings = pickle.loads(frame)
        _write_frame(answers, pickle.dumps(parse_all(raws, settings), protocol=pickle.HIGHEST_PROTOCOL))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the daemon, which then closes us
    # stderr is the daemon's (the journal under systemd): say which process is speaking
    logging.basicConfig(level=logging.WARNING, format=f"%(levelname)s %(name)s[parser {os.getpid()}]: %(message)s")
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt the answers
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    from mailrouter.parse import process as parsing  # this file runs as __main__: answer with the module's classes

    parsing.main()
