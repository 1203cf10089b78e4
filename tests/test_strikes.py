"""A message that kills the daemon is quarantined after the second kill of its own, not retried
after every restart (issue 11, what was left of item 2): its strikes are in the database, and
the try is marked before the risky step, so a SIGKILL in the middle of it counts. A kill while
a batch was worked on blames none of its messages: each is then tried alone, and only kills
while it is alone count against it, so the batch's innocent messages are routed.

The kill is real: the daemon process sends itself SIGKILL from inside the rules when it meets
the poison message, as the watchdog or the OOM killer would end it there.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from mailrouter.act.admit import Router
from mailrouter.parse.message import parse_message
from mailrouter.store import MessageRow, open_database
from mailrouter.testing.samples import demo_samples
from tests.factories import ROOT, example_config

# The daemon (or the admission) with one change: it kills itself when the rules examine the
# message whose Message-ID is given, as a rule that never returns gets it killed by the watchdog,
# when the spool's scanner reads it, as a big message that eats the memory gets it OOM-killed,
# or when the daemon itself parses it (daemon.parse_workers = 0), as a parse that never returns
# gets it killed by the watchdog (the parser process is another program: this never runs there).
KILLER = textwrap.dedent("""\
    import os, signal, sys
    from mailrouter.act import admit
    from mailrouter.intake import spool
    from mailrouter.parse import process

    POISON = sys.argv.pop(1)
    real_examine, real_feed, real_parse = admit.examine, spool.MessageScanner.feed, process.parse_one

    def die():
        with open(os.environ["KILLS"], "a") as kills:
            kills.write("killed\\n")
        os.kill(os.getpid(), signal.SIGKILL)

    def examine(parsed, *args, **kwargs):
        if parsed.inquiry is not None and parsed.inquiry.message_id == POISON:
            die()
        return real_examine(parsed, *args, **kwargs)

    def feed(self, chunk):
        if POISON.encode() in chunk:
            die()
        return real_feed(self, chunk)

    def parse_one(raw, settings):
        if POISON.encode() in raw:
            die()
        return real_parse(raw, settings)

    admit.examine, spool.MessageScanner.feed, process.parse_one = examine, feed, parse_one
    """)
DAEMON = KILLER + textwrap.dedent("""\
    from mailrouter.commands.cli import main
    sys.exit(main())
    """)
ADMIT = KILLER + textwrap.dedent("""\
    import base64, json
    from dataclasses import replace
    from pathlib import Path
    from mailrouter.store import open_database
    from tests.factories import example_config

    url, batch = sys.argv[1], json.loads(open(sys.argv[2]).read())
    config = replace(example_config(), database=url, marker_key_file=Path(sys.argv[2]).parent / "router.key")
    router = admit.Router(config, open_database(url))
    known = router.known_uids("sales", "INBOX", 1, {uid for uid, _raw in batch})  # as a round does
    router.admit_batch("sales", 1, [(uid, base64.b64decode(raw)) for uid, raw in batch if uid not in known])
    """)


def europe(n: int = 3):
    return [s for s in demo_samples() if s.target == "team:europe"][:n]


def message_id(raw: bytes) -> str:
    return parse_message(raw, example_config().parse).message_id


def test_a_message_whose_admission_is_killed_twice_alone_is_quarantined_and_the_rest_routed(tmp_path):
    """Real kills in the middle of the admission, in a process of its own: one in the batch of
    three (nobody's fault yet), two while the poison message is tried alone; then the next try
    quarantines it without examining it again, and routes the other two."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    config = replace(example_config(), database=url, marker_key_file=tmp_path / "router.key")  # not in the checkout
    sessions = open_database(url)
    samples = europe()
    batch = [(i + 1, s.raw) for i, s in enumerate(samples)]
    script, data, kills = tmp_path / "admit.py", tmp_path / "batch.json", tmp_path / "kills"
    script.write_text(ADMIT, encoding="utf-8")
    data.write_text(json.dumps([(uid, base64.b64encode(raw).decode()) for uid, raw in batch]))
    for attempt in (1, 2, 3):
        done = subprocess.run([sys.executable, str(script), message_id(samples[1].raw), url, str(data)],
                              cwd=ROOT, env=_env(kills), capture_output=True, timeout=120)
        assert done.returncode == -signal.SIGKILL, done.stderr.decode()
        assert kills.read_text().count("killed") == attempt
    router = Router(config, sessions)
    unknown = {1, 2, 3} - router.known_uids("sales", "INBOX", 1, {1, 2, 3})  # what the next round fetches
    assert 2 in unknown  # the poison message was never recorded: killed mid-way both times
    router.admit_batch("sales", 1, [(uid, raw) for uid, raw in batch if uid in unknown])
    with sessions() as session:
        rows = session.scalars(select(MessageRow).order_by(MessageRow.uid)).all()
    assert [row.outcome for row in rows] == ["routed", "quarantined", "routed"]
    assert rows[1].reason == "failed twice the same way: the daemon ended while working on it"
    assert rows[1].message_id == message_id(samples[1].raw)
    assert kills.read_text().count("killed") == 3  # the fourth try did not examine it again


def _env(kills: Path) -> dict[str, str]:
    return dict(os.environ, KILLS=str(kills), PYTHONPATH=str(ROOT))


@pytest.mark.integration
@pytest.mark.parametrize("size,kills", [("small", 3), ("big", 2), ("parsed in process", 3)])
def test_a_message_that_gets_the_daemon_killed_is_quarantined_not_retried_forever(bed, tmp_path, size, kills):
    """Real Dovecot and SMTP, the daemon as systemd runs it. A small poison message kills it in
    the rules, once in its batch and twice alone; a big one while its spool file is scanned,
    alone each time; with daemon.parse_workers = 0, a small one while the daemon parses it
    (once the batch was parsed before its try was marked, so every start died on it again).
    The next start files it in Quarantine without trying it again, and the other messages are
    routed."""
    from mailrouter.commands.demo import deliver_samples, wait_until_filed
    from mailrouter.testing.samples import bulk_samples
    from tests.mailcheck import configure, count_rows, shared_copies

    config = configure(bed, tmp_path, large_message_bytes=64 * 1024,
                       parse_workers=0 if size == "parsed in process" else 1)
    samples = europe()
    if size == "big":
        samples[1] = bulk_samples(1, start=7_200, attachment_every=1, attachment_size=300_000)[0]
    deliver_samples(bed, samples)
    script, killed, log = tmp_path / "daemon.py", tmp_path / "kills", tmp_path / "daemon.log"
    script.write_text(DAEMON, encoding="utf-8")
    command = [sys.executable, str(script), message_id(samples[1].raw), "-c", str(tmp_path / "config.toml"), "run"]
    for attempt in range(1, kills + 1):
        with log.open("ab") as out:
            process = subprocess.Popen(command, cwd=ROOT, env=_env(killed), stdout=out, stderr=subprocess.STDOUT)
        try:
            status = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"start {attempt} was not killed by the poison message:\n{log.read_text()}")
        assert status == -signal.SIGKILL, log.read_text()
        assert killed.read_text().count("killed") == attempt
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=_env(killed), stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_until_filed(config, 3, timeout=90), "not filed after the last start:\n" + log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()
    assert killed.read_text().count("killed") == kills  # the last start did not try it again
    assert count_rows(config, MessageRow.outcome == "routed") == 2
    with open_database(config.database)() as session:
        (row,) = session.scalars(select(MessageRow).where(MessageRow.outcome == "quarantined"))
    assert row.reason == "failed twice the same way: the daemon ended while working on it"
    copies = shared_copies(bed, "sales@example.com")
    assert copies["INBOX"] == []
    assert [len(raws) for folder, raws in copies.items() if "Quarantine" in folder] == [1]
