"""The parse stage in a worker process gives the same answers, and survives its death."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailrouter.parse.process import OVER_MEMORY, InlineParser, Parsed, ProcessParser, parse_all, parse_one
from mailrouter.testing.samples import bulk_samples, demo_samples
from tests.factories import example_config

SETTINGS = example_config().parse


@pytest.fixture(scope="module")
def process_parser():
    parser = ProcessParser(1, min_batch=1)
    yield parser
    parser.close()


def test_worker_process_parses_like_the_daemon_thread(process_parser: ProcessParser) -> None:
    raws = [s.raw for s in demo_samples()] + [s.raw for s in bulk_samples(40)]
    got = process_parser.submit(raws, SETTINGS).result(timeout=120)
    assert got == parse_all(raws, SETTINGS)
    assert any(p.inquiry is None and p.problem.startswith("unreadable") for p in got)  # the demo's junk
    assert sum(p.inquiry is not None for p in got) >= len(raws) - 2


def test_inline_parser_is_the_same_function() -> None:
    raw = bulk_samples(1)[0].raw
    assert InlineParser().submit([raw], SETTINGS).result() == [parse_one(raw, SETTINGS)]


def test_a_killed_worker_costs_nothing_but_a_retry(process_parser: ProcessParser, caplog) -> None:
    raws = [s.raw for s in bulk_samples(300)]
    process_parser.submit(raws[:1], SETTINGS).result(timeout=120)  # the process is up
    future = process_parser.submit(raws, SETTINGS)
    process_parser._procs[0].kill()  # noqa: SLF001 (the test plays the OOM killer)
    got = future.result(timeout=300)
    assert [p.inquiry.message_id if p.inquiry else None for p in got] == \
        [p.inquiry.message_id if p.inquiry else None for p in parse_all(raws, SETTINGS)]
    assert "the parser process failed on a batch of 300 after " in caplog.text
    assert process_parser.submit(raws[:2], SETTINGS).result(timeout=120)[0].inquiry is not None


class _KillsTheParser:
    """Settings whose unpickling ends the worker process, as a parser crash on a message would."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_a_message_that_kills_every_worker_is_quarantined_not_lost() -> None:
    parser = ProcessParser(1, min_batch=1)
    try:
        got = parser.submit([b"From: a@b.c\r\n\r\nhi", b"From: d@e.f\r\n\r\nho"], _KillsTheParser()).result(timeout=120)
    finally:
        parser.close()
    assert [p.problem for p in got] == ["two parser processes failed on it: the parser process ended with status 3"] * 2
    assert [p.size for p in got] == [17, 17] and all(p.sha256 for p in got)  # kept for the quarantine row


def test_a_lone_message_is_parsed_without_a_process_and_the_processes_end_when_idle() -> None:
    import time
    parser = ProcessParser(1, min_batch=8, idle_exit=1.0)
    raws = [s.raw for s in bulk_samples(8)]
    try:
        assert parser.submit(raws[:1], SETTINGS).result().pop().inquiry is not None
        assert not parser.running
        assert len(parser.submit(raws, SETTINGS).result(timeout=120)) == 8
        assert parser.running
        deadline = time.monotonic() + 30
        while parser.running and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not parser.running
        assert parser.submit(raws, SETTINGS).result(timeout=120) == parse_all(raws, SETTINGS)  # and back
    finally:
        parser.close()


def test_the_parser_process_ends_when_the_daemon_is_killed(tmp_path) -> None:
    import signal
    import subprocess
    import sys
    import time
    script = tmp_path / "daemon.py"
    script.write_text(
        "import sys, time\n"
        "from mailrouter.parse.process import ProcessParser\n"
        "from mailrouter.testing.samples import bulk_samples\n"
        "from tests.factories import example_config\n"
        "parser = ProcessParser(1, min_batch=1)\n"
        "assert parser.submit([bulk_samples(1)[0].raw], example_config().parse).result(timeout=60)\n"
        "print(parser._procs[0].process.pid, flush=True)\n"
        "time.sleep(120)\n")
    root = str(Path(__file__).resolve().parent.parent)
    daemon = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=root,
                              env={**os.environ, "PYTHONPATH": root})
    child = int(daemon.stdout.readline())
    os.kill(daemon.pid, signal.SIGKILL)  # no clean-up at all, as after an OOM kill
    daemon.wait()
    daemon.stdout.close()

    def running() -> bool:  # an orphan is reaped by init; a zombie has ended too
        try:
            return "zombie" not in Path(f"/proc/{child}/status").read_text()
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and running():
        time.sleep(0.1)
    assert not running()


def test_the_parser_process_imports_no_database_layer() -> None:
    import subprocess
    import sys
    code = ("import sys, mailrouter.parse.process as p; p._warm_up(); "
            "print(sorted(m for m in ('sqlalchemy', 'imapclient', 'aiosmtplib', 'jinja2') if m in sys.modules))")
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": root}, check=True).stdout
    assert out.strip() == "[]"


def test_the_parse_carries_the_fingerprints_and_the_sender_keys() -> None:
    from mailrouter.intake.fingerprint import content_key, raw_sha256
    from mailrouter.registry.keys import inquiry_keys
    raw = demo_samples()[0].raw
    parsed = parse_one(raw, SETTINGS)
    assert (parsed.sha256, parsed.content_key) == (raw_sha256(raw), content_key(raw))
    assert parsed.sender_keys == inquiry_keys(parsed.inquiry, SETTINGS.free_mail_domains)
    assert parsed.sender_keys.emails == (parsed.inquiry.sender.lower(),)


def test_two_threads_sharing_one_parser_process_never_wait_on_each_other() -> None:
    # before: a thread writing a batch held the lock the answer reader needed, so with the
    # child blocked writing an answer nobody read, all three waited for ever (issue 13)
    import threading
    import time
    parser = ProcessParser(1, min_batch=1)
    raws = [s.raw for s in bulk_samples(200)]
    answers: list[list[Parsed]] = []

    def mailbox() -> None:  # batches parsed ahead, as a mailbox thread does in a backlog
        answers.extend(f.result() for f in [parser.submit(raws, SETTINGS) for _ in range(3)])

    threads = [threading.Thread(target=mailbox, daemon=True) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 90
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0))
        assert not any(t.is_alive() for t in threads), "the mailbox threads are stuck on the parser"
    finally:
        parser.close()
    assert len(answers) == 6 and all(len(a) == 200 and a[0].inquiry for a in answers)


def test_a_message_over_the_parse_budget_is_quarantined_and_the_batch_goes_on(monkeypatch, caplog) -> None:
    import time
    monkeypatch.setenv("MAILROUTER_TEST_STALL_PARSE", "Ref. 3")  # the child stalls on it (ProcessParser)
    raws = [s.raw for s in bulk_samples(6)]
    parser = ProcessParser(1, min_batch=1, timeout=2.0)
    try:
        parser.submit(raws[:1], SETTINGS).result(timeout=120)  # the child is up
        first = parser._procs[0].process.pid  # noqa: SLF001
        started = time.monotonic()
        got = parser.submit(raws, SETTINGS).result(timeout=60)
        took = time.monotonic() - started
        assert parser.submit(raws[:1], SETTINGS).result(timeout=60)[0].inquiry is not None
        assert parser._procs[0].process.pid != first  # noqa: SLF001 (killed and replaced)
    finally:
        parser.close()
    assert [p.inquiry is None for p in got] == [False, False, False, True, False, False]
    assert got[3].problem == "parse took longer than 2s (daemon.parse_timeout)"
    assert got[3].sha256 and got[3].size == len(raws[3])
    assert took < 15, f"the batch waited {took:.1f}s for a 2 s budget"
    assert "parse took longer than 2s (daemon.parse_timeout); killed, a fresh one takes over" in caplog.text


def test_a_stopped_parser_process_is_replaced_and_its_batch_parsed() -> None:
    import signal
    raws = [s.raw for s in bulk_samples(20)]
    parser = ProcessParser(1, min_batch=1, timeout=2.0)
    try:
        parser.submit(raws[:1], SETTINGS).result(timeout=120)
        os.kill(parser._procs[0].process.pid, signal.SIGSTOP)  # noqa: SLF001 (a wedged child)
        got = parser.submit(raws, SETTINGS).result(timeout=60)
    finally:
        parser.close()
    # the message it stopped on is quarantined (its parse is over budget); the rest is parsed
    assert [p.problem for p in got].count("parse took longer than 2s (daemon.parse_timeout)") == 1
    assert sum(p.inquiry is not None for p in got) == 19


def test_the_daemons_parser_starts_at_once_and_stays_for_lone_messages() -> None:
    from mailrouter.parse.process import make_parser
    parser = make_parser(1, timeout=5.0)
    try:
        parser.start()
        assert parser.running  # before any mail: the first message waits for no imports
        raw = bulk_samples(1)[0].raw
        assert parser.submit([raw], SETTINGS).result(timeout=120) == [parse_one(raw, SETTINGS)]
        assert parser.running and parser.idle_exit is None
    finally:
        parser.close()
    assert not parser.running


def test_a_message_over_the_memory_ceiling_is_quarantined_and_the_parser_goes_on() -> None:
    # a 30 MB all-text message needs ~445 MiB to parse; the child is allowed 200
    huge = bulk_samples(1)[0].raw + b"Valves please. " * (30 * 2**20 // 15)
    ordinary = [s.raw for s in bulk_samples(2)]
    parser = ProcessParser(1, min_batch=1, memory_mb=200)
    try:
        got = parser.submit([ordinary[0], huge, ordinary[1]], SETTINGS).result(timeout=180)
    finally:
        parser.close()
    assert [p.inquiry is None for p in got] == [False, True, False]
    assert got[1].problem in (OVER_MEMORY, f"two parser processes failed on it: {OVER_MEMORY}")
    assert got[1].size == len(huge) and got[1].sha256


def test_a_message_that_runs_the_stdlib_parser_out_of_memory_says_so() -> None:
    # 16 MB of text on one line needs more than 256 MiB to parse: it runs out inside the stdlib parser's
    # fallback, whose catch-all once turned the MemoryError into "not parseable as email: "
    # (an empty reason); the quarantine reason must name the ceiling
    huge = bulk_samples(1)[0].raw + b"Valves please. " * (16 * 2**20 // 15)
    parser = ProcessParser(1, min_batch=1, memory_mb=256)
    try:
        (got,) = parser.submit([huge], SETTINGS).result(timeout=180)
    finally:
        parser.close()
    assert got.inquiry is None
    assert got.problem in (OVER_MEMORY, f"two parser processes failed on it: {OVER_MEMORY}")
