"""The parse budget holds on every path a customer's message takes (issue 14, what was left):
a spooled big message and one a manager moves into Assign/ are parsed in the parser process
too, so one that never finishes parsing is cut off and quarantined while the mailbox goes on."""
from __future__ import annotations

import signal
import time
from datetime import datetime, timezone

import pytest

from mailrouter.commands.demo import write_testbed_config
from mailrouter.config.load import load_config
from mailrouter.intake.fingerprint import content_key
from mailrouter.parse.process import STALL_ENV
from mailrouter.runtime.mailbox import ASSIGN_CHECK_INTERVAL
from mailrouter.store import MessageRow
from mailrouter.testing.hostile import _plain, sentinel
from tests.factories import ROOT
from tests.mailcheck import count_rows, forwards_by_original, server_folder, start_daemon_process, wait_for

pytestmark = pytest.mark.integration

SHARED = "sales@example.com"
MARKER = "never-ends-parsing-14"  # the parse of a message holding it never ends (STALL_ENV)
BUDGET = 5  # daemon.parse_timeout in these tests
BOUND = 90  # seconds: generous, the machine is shared


def hostile(size: int) -> bytes:
    """An inquiry-looking message whose parse never ends, padded to `size` octets of text."""
    body = f"{MARKER}\r\n" + "We need ball valves. " * (size // 21 + 1)
    return _plain(77, "never-ends", body, subject="Hostile parse")


def keys(raws: list[bytes]) -> list[str]:
    """The messages' identities, whatever trace headers delivery added."""
    return [content_key(raw) for raw in raws]


def run_daemon(bed, tmp_path, monkeypatch, **daemon):
    monkeypatch.setenv(STALL_ENV, MARKER)
    config_path = write_testbed_config(ROOT / "config.toml", bed, tmp_path, parse_timeout=BUDGET, **daemon)
    log = tmp_path / "daemon.log"
    return load_config(config_path), log, start_daemon_process(config_path, log)


def stop(process) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(60)
    finally:
        process.kill()


def test_a_spooled_message_over_the_parse_budget_is_quarantined_and_the_mailbox_goes_on(bed, tmp_path, monkeypatch):
    config, log, daemon = run_daemon(bed, tmp_path, monkeypatch, large_message_bytes=50_000)
    big, before, after = hostile(200_000), sentinel(78), sentinel(80)
    assert len(big) > 50_000 >= len(before.raw)
    try:
        bed.deliver(SHARED, big, mail_from="buyer77@weber-armaturen.de")
        # small ones of a round go before its big ones: this one shows the big one was reached
        bed.deliver(SHARED, before.raw, mail_from="k.weber78@weber-armaturen.de")
        wait_for(lambda: forwards_by_original(bed, config).get("<hostile78.sentinel@weber-armaturen.de>"),
                 "the ordinary inquiry beside the hostile big one to be forwarded", timeout=BOUND)
        bed.deliver(SHARED, after.raw, mail_from="k.weber80@weber-armaturen.de")
        forwarded = wait_for(lambda: forwards_by_original(bed, config).get("<hostile80.sentinel@weber-armaturen.de>"),
                             "the ordinary inquiry after the hostile big one to be forwarded", timeout=BOUND)
        wait_for(lambda: len(bed.fetch_all(SHARED, config.folders.quarantine)) == 1,
                 "the hostile big message in Quarantine", timeout=BOUND)
        assert stop(daemon) == 0
    finally:
        daemon.kill()
        daemon.wait()
    text = log.read_text()
    assert len(forwarded) == 1
    assert keys(bed.fetch_all(SHARED, config.folders.quarantine)) == keys([big])  # filed, not lost
    assert count_rows(config, MessageRow.folder == config.folders.quarantine) == 1
    assert f"parse took longer than {BUDGET}s (daemon.parse_timeout)" in text


def test_a_message_moved_into_assign_over_the_parse_budget_is_quarantined_and_the_mailbox_goes_on(
        bed, tmp_path, monkeypatch):
    config, log, daemon = run_daemon(bed, tmp_path, monkeypatch)
    assign = f"{config.folders.assign}/{config.reps['zhang'].folder}"
    ordinary = sentinel(79)
    moved = hostile(2_000)
    try:
        wait_for(lambda: assign.split("/")[0] in "".join(bed.folders(SHARED)), "the Assign/ folders", timeout=BOUND)
        # what a manager's drag and drop leaves on the server: the message in Assign/张伟
        bed.append(SHARED, [(moved, [], datetime.now(timezone.utc))], folder=server_folder(bed, SHARED, assign))
        # Assign/ folders are looked at every ASSIGN_CHECK_INTERVAL (5 s): let a round take it up
        # first (no state to poll: before the fix the mailbox thread sat in its parse, silent)
        time.sleep(3 * ASSIGN_CHECK_INTERVAL)
        bed.deliver(SHARED, ordinary.raw, mail_from="k.weber79@weber-armaturen.de")
        forwarded = wait_for(lambda: forwards_by_original(bed, config).get("<hostile79.sentinel@weber-armaturen.de>"),
                             "the ordinary inquiry after the hostile assignment to be forwarded", timeout=BOUND)
        wait_for(lambda: len(bed.fetch_all(SHARED, config.folders.quarantine)) == 1,
                 "the hostile Assign/ message in Quarantine", timeout=BOUND)
        assert stop(daemon) == 0
    finally:
        daemon.kill()
        daemon.wait()
    text = log.read_text()
    assert len(forwarded) == 1
    assert keys(bed.fetch_all(SHARED, config.folders.quarantine)) == keys([moved])  # filed, not lost
    assert bed.fetch_all(SHARED, server_folder(bed, SHARED, assign)) == []
    assert f"parse took longer than {BUDGET}s (daemon.parse_timeout)" in text
