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
import resource
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, Protocol, Sequence

from mailrouter.intake.fingerprint import content_key, raw_sha256
from mailrouter.model import PARSE_MEMORY_MB, Inquiry, ParseSettings
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


STALL_ENV = "MAILROUTER_TEST_STALL_PARSE"  # tests: a message holding this text never finishes parsing


def parse_one(raw: bytes, settings: ParseSettings) -> Parsed:
    _stall_if_told(raw)
    sha, key = raw_sha256(raw), content_key(raw)
    try:
        inquiry = parse_message(raw, settings)
    except UnreadableMessage as exc:
        return Parsed(None, f"unreadable: {exc}", sha, key, len(raw))
    except MemoryError:  # over the parser process's ceiling: this message's doing, not a bug
        return Parsed(None, OVER_MEMORY, sha, key, len(raw))
    except Exception as exc:  # a parser bug must not stop the daemon: keep the message aside
        log.exception("parser failed")
        return Parsed(None, f"parser error: {type(exc).__name__}: {exc}", sha, key, len(raw))
    try:
        keys = inquiry_keys(inquiry, settings.free_mail_domains)
    except Exception:  # the registry looks again itself; the message is not at fault
        log.exception("sender keys failed")
        keys = None
    return Parsed(inquiry, "", sha, key, len(raw), keys)


def _stall_if_told(raw: bytes) -> None:
    """Tests' stand-in for a hostile message: a parse that never ends, wherever it runs (the
    parser process or, where a path skipped it, the mailbox thread), so a test sees which."""
    marker = os.environ.get(STALL_ENV, "").encode()
    if marker and marker in raw:
        time.sleep(3600)


def parse_all(raws: Sequence[bytes], settings: ParseSettings) -> list[Parsed]:
    return [parse_one(raw, settings) for raw in raws]


class Parser(Protocol):
    # True: submit parses in the calling thread, so its caller marks a message's try before
    # submitting it (a kill during the parse then counts as a death during it, act/strikes.py)
    in_process: bool

    def start(self) -> None: ...
    def submit(self, raws: Sequence[bytes], settings: ParseSettings) -> "Future[list[Parsed]]": ...
    def close(self) -> None: ...


class InlineParser:
    """Parses in the calling thread (`parse_workers = 0`, tests, one-off commands)."""

    in_process = True

    def submit(self, raws: Sequence[bytes], settings: ParseSettings) -> "Future[list[Parsed]]":
        future: Future[list[Parsed]] = Future()
        future.set_result(parse_all(raws, settings))
        return future

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


def _warm_up() -> None:
    """Load the language profiles and lazy imports before the first real batch."""
    from mailrouter.testing.samples import bulk_samples
    parse_one(bulk_samples(1)[0].raw, ParseSettings(free_mail_domains=frozenset()))


# Every batch goes to the child, a lone new message too: only there can a parse be cut off
# (daemon.parse_timeout); a round trip costs a millisecond or two.
MIN_BATCH = 1
IDLE_EXIT = 120.0  # seconds without a batch after which the worker processes exit
PARSE_TIMEOUT = 30.0  # seconds per message: a parse past this is cut off (daemon.parse_timeout)
MEMORY_ENV = "MAILROUTER_PARSE_MEMORY_MB"  # the child's ceiling, set by the daemon (daemon.parse_memory_mb)
OVER_MEMORY = "parse needed more memory than daemon.parse_memory_mb allows"
EXIT_OVER_MEMORY = 75  # the child's status when a message ran it out of memory outside the parse
START_TIMEOUT = 60.0  # seconds a fresh child may take to import and load its profiles
CHECK_EVERY = 0.25  # seconds between looks at the per-message deadline
_FRAME = struct.Struct("!Q")


class WorkerDied(Exception):
    """The parser process ended (killed, crashed, over its time budget) before answering all
    of a batch: `done` holds the answers it gave, the message after them was in its hands."""

    def __init__(self, reason: str, done: Sequence[Parsed] = (), blamed: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.done = list(done)
        self.blamed = blamed  # ended over the next message: too slow, or its answer unreadable


def _pipes(process: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    """The child's stdin and stdout, which Popen opened as asked (PIPE)."""
    if process.stdin is None or process.stdout is None:
        raise RuntimeError("the parser process was started without its pipes")
    return process.stdin, process.stdout


def _write_frame(out: IO[bytes], data: bytes) -> None:
    out.write(_FRAME.pack(len(data)))
    out.write(data)
    out.flush()


def _read_frame(source: IO[bytes]) -> bytes | None:
    head = source.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    data = source.read(size)
    return data if len(data) == size else None


@dataclass
class _Request:
    raws: list[bytes]
    settings: ParseSettings
    future: "Future[list[Parsed]]"
    queued_at: float
    done: list[Parsed] = field(default_factory=list)


class WorkerProcess:
    """One parser child, answering each message of each batch in order.

    No deadlock by construction (issue 13): a submitting thread only appends to a queue; one
    writer thread feeds the child's stdin, one reader thread drains its stdout, and the lock
    they share guards the list of pending batches, never a pipe. So the child can always
    write its answers, hence always reads on, whatever the number of mailbox threads; and a
    message the child takes longer than `timeout` over gets the child killed, which fails the
    batch (with the answers so far) instead of leaving its caller waiting."""

    def __init__(self, timeout: float = PARSE_TIMEOUT, memory_mb: int = PARSE_MEMORY_MB) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, MEMORY_ENV: str(memory_mb), "PYTHONPATH": os.pathsep.join(
            p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
        self.process = subprocess.Popen([sys.executable, "-m", "mailrouter.parse.process"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._requests, self._answers = _pipes(self.process)
        self.timeout = timeout
        self._pending: deque[_Request] = deque()
        self._outgoing: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._ready = False  # the child has loaded its profiles (its first frame says so)
        self._progress_at = time.monotonic()  # start, readiness or the last answer
        self._killed_for = ""
        self.alive = True
        name = f"parser-{self.process.pid}"
        threading.Thread(target=self._write_requests, name=f"{name}-writer", daemon=True).start()
        threading.Thread(target=self._read_answers, name=f"{name}-reader", daemon=True).start()
        threading.Thread(target=self._enforce_deadline, name=f"{name}-clock", daemon=True).start()

    def submit(self, raws: Sequence[bytes], settings: ParseSettings) -> "Future[list[Parsed]]":
        """Queue a batch; never blocks."""
        future: Future[list[Parsed]] = Future()
        with self._lock:
            if not self.alive:
                future.set_exception(WorkerDied("the parser process has ended"))
                return future
            request = _Request(list(raws), settings, future, time.monotonic())
            self._pending.append(request)
        self._outgoing.put(request)
        return future

    def _write_requests(self) -> None:
        while (request := self._outgoing.get()) is not None:
            try:
                _write_frame(self._requests,
                             pickle.dumps((request.raws, request.settings), protocol=pickle.HIGHEST_PROTOCOL))
            except (OSError, ValueError):
                break  # the child is gone: the reader sees the EOF and fails what is pending
        try:
            self._requests.close()  # EOF: the child ends after its last answer
        except OSError:
            pass

    def _read_answers(self) -> None:
        while (frame := _read_frame(self._answers)) is not None:
            try:
                finished = self._take_answer(frame)
            except Exception as exc:  # noqa: BLE001 (an answer that will not unpickle: end this child)
                self._killed_for = f"the parser process sent an unreadable answer ({type(exc).__name__})"
                self.kill()
                break
            if finished is not None:
                finished.future.set_result(finished.done)
        code = self.process.wait()
        self._answers.close()
        with self._lock:
            self.alive = False
            pending, self._pending = list(self._pending), deque()
        self._outgoing.put(None)
        reason = self._killed_for or (OVER_MEMORY if code == EXIT_OVER_MEMORY
                                      else f"the parser process ended with status {code}")
        for index, request in enumerate(pending):  # only the first was in the child's hands
            request.future.set_exception(WorkerDied(reason, request.done, bool(self._killed_for) and index == 0))

    def _take_answer(self, frame: bytes) -> _Request | None:
        """Record one frame (readiness, or the next message's Parsed); the batch it completed."""
        answer = pickle.loads(frame) if frame else None
        with self._lock:
            self._progress_at = time.monotonic()
            if answer is None:
                self._ready = True
                return None
            head = self._pending[0]
            head.done.append(answer)
            if len(head.done) < len(head.raws):
                return None
            return self._pending.popleft()

    def overdue(self, now: float) -> bool:
        """The child has been on one message (or its start) longer than allowed."""
        with self._lock:
            if not self._pending:
                return False
            if not self._ready:
                return now - self._progress_at > max(START_TIMEOUT, self.timeout)
            started = max(self._progress_at, self._pending[0].queued_at)
            return now - started > self.timeout

    def _enforce_deadline(self) -> None:
        while self.alive:
            time.sleep(CHECK_EVERY)
            if self.alive and self.overdue(time.monotonic()):
                self._killed_for = f"parse took longer than {self.timeout:g}s (daemon.parse_timeout)"
                log.warning("parser process %d: %s; killed, a fresh one takes over",
                            self.process.pid, self._killed_for)
                self.kill()
                return

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def close(self, timeout: float = 5.0) -> None:
        """Let it finish what it has, then end it (EOF on its stdin)."""
        self._outgoing.put(None)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()

    def kill(self) -> None:
        self.process.kill()


class ProcessParser:
    """Batches go to parser processes, started when mail comes and ended after a quiet
    while; results come back in order as a Future.

    A child that dies or runs over its time budget costs its batch nothing but a retry: the
    answers it gave are kept, the message it was on is parsed again alone in a fresh child
    (twice in trouble: quarantined with the reason), and the rest of the batch goes on."""

    in_process = False  # a parse that kills or hangs the child is the child's death, not the daemon's

    def __init__(self, workers: int = 1, min_batch: int = MIN_BATCH, idle_exit: float | None = IDLE_EXIT,
                 timeout: float = PARSE_TIMEOUT, memory_mb: int = PARSE_MEMORY_MB):
        self.workers = workers
        self.memory_mb = memory_mb
        self.min_batch = min_batch
        self.idle_exit = idle_exit
        self.timeout = timeout
        self._procs: list[WorkerProcess] = []
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._idle_timer: threading.Timer | None = None
        self._closed = False

    def _worker(self) -> WorkerProcess:
        with self._lock:
            if self._closed:
                raise WorkerDied("the parser is closed (the daemon is stopping)")
            if self.idle_exit is not None:
                self._restart_idle_timer(self.idle_exit)
            self._procs = [p for p in self._procs if p.alive]
            if len(self._procs) < self.workers:
                self._procs.append(WorkerProcess(self.timeout, self.memory_mb))
            return self._procs[next(self._turn) % len(self._procs)]

    def _restart_idle_timer(self, idle_exit: float) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = threading.Timer(idle_exit, self._exit_if_idle)
        self._idle_timer.daemon = True
        self._idle_timer.start()

    def _exit_if_idle(self) -> None:
        with self._lock:
            if any(p.busy for p in self._procs):
                if self.idle_exit is not None:  # (always: the timer runs only with one)
                    self._restart_idle_timer(self.idle_exit)
                return
            procs, self._procs = self._procs, []
        for proc in procs:
            proc.close()
        if procs:
            log.debug("parser processes ended after %.0fs without a backlog", self.idle_exit)

    @property
    def running(self) -> bool:
        return any(p.alive for p in self._procs)

    def start(self) -> None:
        """Start the processes now, so the first message does not wait for their imports."""
        for _ in range(self.workers):
            self._worker()

    def submit(self, raws: Sequence[bytes], settings: ParseSettings) -> "Future[list[Parsed]]":
        if len(raws) < self.min_batch:
            return InlineParser().submit(raws, settings)
        outer: Future[list[Parsed]] = Future()

        def run() -> None:
            try:
                outer.set_result(self._parse(list(raws), settings))
            except BaseException as exc:  # noqa: BLE001 (handed to the waiting caller)
                outer.set_exception(exc)

        threading.Thread(target=run, name="parse-batch", daemon=True).start()
        return outer

    def _parse(self, raws: list[bytes], settings: ParseSettings) -> list[Parsed]:
        """Every message parsed or quarantined with why; each loop consumes at least one."""
        results: list[Parsed] = []
        while raws:
            try:
                return results + self._worker().submit(raws, settings).result()
            except WorkerDied as died:
                if self._closed:
                    raise
                results += died.done
                raws = raws[len(died.done):]
                failure = died
                log.warning("the parser process failed on a batch of %d after %d: %s",
                            len(raws) + len(died.done), len(died.done), died.reason)
            except Exception as exc:  # an answer that would not unpickle, say: parse here instead
                log.warning("parser process failed (%s); parsing in the daemon", exc)
                return results + parse_all(raws, settings)
            # over the budget: quarantined at once (another try would stall the mailbox as long
            # again); a crash, which may be the OOM killer's doing, earns a second try alone
            results.append(_given_up(raws[0], failure.reason) if failure.blamed else self._alone(raws[0], settings))
            raws = raws[1:]
        return results

    def _alone(self, raw: bytes, settings: ParseSettings) -> Parsed:
        """A second chance in a fresh child, without the rest of its batch."""
        try:
            return self._worker().submit([raw], settings).result()[0]
        except WorkerDied as again:
            if self._closed:
                raise
            return _given_up(raw, f"two parser processes failed on it: {again.reason}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            procs, self._procs = self._procs, []
        for proc in procs:
            proc.close()


def _given_up(raw: bytes, problem: str) -> Parsed:
    """A message no parser process got through: quarantined, with why."""
    return Parsed(None, problem, raw_sha256(raw), content_key(raw), len(raw))


def make_parser(workers: int, timeout: float = PARSE_TIMEOUT, memory_mb: int = PARSE_MEMORY_MB) -> Parser:
    """The daemon's parser: its processes start with it and stay, since every message is
    parsed there and a cold start costs seconds (imports, language profiles)."""
    if workers == 0:
        return InlineParser()
    return ProcessParser(workers, idle_exit=None, timeout=timeout, memory_mb=memory_mb)


def limit_memory(memory_mb: int) -> None:
    """Cap this process's address space: a message that needs more gets MemoryError (or ends
    the child), never the machine's memory and the daemon with it."""
    ceiling = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The parser process: an empty frame once ready, then for each pickled (raws, settings)
    one frame per message, its Parsed, until EOF. The daemon times each message from the
    frame before it, so a message too slow to parse is known and the rest is not lost."""
    _warm_up()
    _write_frame(answers, b"")
    while (frame := _read_frame(requests)) is not None:
        raws, settings = pickle.loads(frame)
        for raw in raws:
            try:
                answer = pickle.dumps(parse_one(raw, settings), protocol=pickle.HIGHEST_PROTOCOL)
            except MemoryError:  # in fingerprinting or pickling: say why, and let a fresh child go on
                os._exit(EXIT_OVER_MEMORY)  # (no cleanup: there may be no memory for it)
            _write_frame(answers, answer)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the daemon, which then closes us
    # stderr is the daemon's (the journal under systemd): say which process is speaking
    logging.basicConfig(level=logging.WARNING, format=f"%(levelname)s %(name)s[parser {os.getpid()}]: %(message)s")
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt the answers
    if memory := os.environ.get(MEMORY_ENV):
        limit_memory(int(memory))
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    from mailrouter.parse import process as parsing  # this file runs as __main__: answer with the module's classes

    parsing.main()
