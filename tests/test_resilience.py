"""Nothing is lost: crashes, SMTP failures and servers without MOVE, UIDPLUS or keywords."""
from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import replace

import pytest
from sqlalchemy import select

from mailrouter.config.load import Config
from mailrouter.runtime.daemon import Daemon
from mailrouter.commands.demo import deliver_samples, wait_until_filed
from mailrouter.testing.samples import demo_samples
from mailrouter.store import FILED, MessageRow, OutboxRow, open_database
from mailrouter.testing.testbed import TestBed
from tests.mailcheck import (backlog_in_progress, configure, count_rows, folder_of, forwards_by_original,
                             parsed, restart_and_finish, route_all, shared_copies)

pytestmark = pytest.mark.integration


def forward_counts(bed: TestBed, config: Config) -> Counter:
    return Counter({mid: len(v) for mid, v in forwards_by_original(bed, config).items()})


def all_messages(bed: TestBed, user: str) -> list[bytes]:
    return [raw for raws in shared_copies(bed, user).values() for raw in raws]


def test_sigkill_in_the_middle_of_a_backlog_loses_nothing(bed, tmp_path):
    config, config_path, log, first, samples = backlog_in_progress(bed, tmp_path, 400)
    first.send_signal(signal.SIGKILL)
    first.wait()
    filed_at_kill = count_rows(config, MessageRow.state == FILED)
    assert filed_at_kill < len(samples), "the backlog finished before the kill; make it larger"

    restart_and_finish(config, config_path, log, len(samples), timeout=120)

    counts = forward_counts(bed, config)
    for sample in samples:
        assert counts[str(parsed(sample.raw)["Message-ID"])] >= 1, sample.label
    # only inside the documented window: accepted by SMTP, not yet written down, one forward
    # per SMTP session (docs/ARCHITECTURE.md)
    assert sum(n - 1 for n in counts.values()) <= config.smtp.connections, counts.most_common(3)
    assert len(all_messages(bed, "sales@example.com")) == len(samples)
    assert bed.fetch_all("sales@example.com") == []


@pytest.mark.parametrize("hide", [{"MOVE"}, {"MOVE", "UIDPLUS"}], ids=["no-move", "no-move-no-uidplus"])
def test_server_without_move_or_keywords_still_files_every_copy(make_bed, tmp_path, hide):
    bed = make_bed(proxy_hide=hide, proxy_no_keywords=True)
    samples = demo_samples()
    config = configure(bed, tmp_path)
    route_all(bed, config, samples)

    copies = shared_copies(bed, "sales@example.com")
    delivered = [s for s in samples if "sales@example.com" in s.to]
    for sample in delivered:
        filed = [f for f in folder_of(copies, sample) if f != "INBOX"]
        assert len(filed) == 1, (sample.label, folder_of(copies, sample))
    client = bed.imap("sales@example.com")  # through the proxy, as the daemon saw it
    try:
        client.select_folder("INBOX", readonly=True)
        left = client.search(["ALL"])
        deleted = client.search(["DELETED"])
        keywords = {f for flags in client.get_flags(left).values() for f in flags}
    finally:
        client.logout()
    if "UIDPLUS" in hide:
        # no UID EXPUNGE: the originals stay, flagged \Deleted, for a person to expunge
        assert len(left) == len(delivered) and set(deleted) == set(left)
    else:
        assert left == []  # removed with UID EXPUNGE of exactly our UIDs
    assert not any(k.startswith(b"mr-") for k in keywords)
    assert len(forwards_by_original(bed, config)) == len([s for s in samples if s.outcome == "routed"])


def test_temporary_smtp_failure_is_retried_until_accepted(bed, tmp_path):
    config = configure(bed, tmp_path)
    sample = demo_samples()[0]
    bed.smtp_fail_next(2, code=451)
    route_all(bed, config, [sample])
    assert forward_counts(bed, config)[str(parsed(sample.raw)["Message-ID"])] == 1
    with open_database(config.database)() as session:
        item = session.scalars(select(OutboxRow)).one()
    assert (item.status, item.attempts, item.payload) == ("sent", 3, None)
    assert item.last_error.startswith("451")


def test_permanent_smtp_failure_files_the_copy_for_the_manager(bed, tmp_path):
    config = configure(bed, tmp_path)
    sample = demo_samples()[0]
    bed.smtp_fail_next(1, code=550)
    route_all(bed, config, [sample])
    assert forward_counts(bed, config) == Counter()
    copies = shared_copies(bed, "sales@example.com")
    assert folder_of(copies, sample) == [config.folders.undeliverable]
    with open_database(config.database)() as session:
        row = session.scalars(select(MessageRow)).one()
    assert row.outcome == "undeliverable" and "550" in row.reason and "permanent" in row.reason


def test_restart_sends_what_was_decided_while_smtp_was_down(bed, tmp_path):
    up = configure(bed, tmp_path)
    # first run: SMTP unreachable, so decisions are recorded and the copies stay in INBOX
    down = replace(up, smtp=replace(up.smtp, server=replace(up.smtp.server, port=1)))
    samples = demo_samples()[:3]
    deliver_samples(bed, samples)
    daemon = Daemon(down)
    daemon.start()
    deadline = time.monotonic() + 30
    while count_rows(down) < len(samples):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    daemon.stop()
    assert len(bed.fetch_all("sales@example.com")) == len(samples)  # nothing filed before it is sent
    assert forward_counts(bed, down) == Counter()
    # second run with SMTP back: the queued forwards go out, then the copies are filed
    daemon = Daemon(up)
    daemon.start()
    try:
        assert wait_until_filed(up, len(samples), timeout=60)
    finally:
        daemon.stop()
    assert sum(forward_counts(bed, up).values()) == len(samples)
    assert bed.fetch_all("sales@example.com") == []


def test_forwards_accepted_by_a_flush_that_never_recorded_them_are_not_sent_again(bed, tmp_path):
    """The sender writes no database rows while the batch transaction holds the lock; a crash
    between SMTP's 250 and the record must still not send those forwards twice."""
    from mailrouter.act.outbox import Outbox
    from mailrouter.act.admit import Router

    config = configure(bed, tmp_path)
    sessions = open_database(config.database)
    samples = [s for s in demo_samples() if s.outcome == "routed" and not s.duplicate_in]
    rows = Router(config, sessions).admit_batch("sales", 1, [(i + 1, s.raw) for i, s in enumerate(samples)])
    routed = sum(row.outcome == "routed" for row in rows)
    assert routed >= 10

    results = Outbox(config, sessions).send_due("sales")  # accepted by SMTP ...
    assert len(results) == routed and all(r.ok for _item, r in results)
    # ... and the process dies here, before record(): a new daemon's outbox takes over
    outbox = Outbox(config, sessions)
    assert outbox.accepted_log("sales").ids() == {item.id for item, _r in results}
    assert outbox.flush("sales") == routed  # recorded from the log, nothing sent
    assert outbox.accepted_log("sales").ids() == set() and outbox.flush("sales") == 0
    with sessions() as session:
        assert {row.status for row in session.scalars(select(OutboxRow))} == {"sent"}
    counts = Counter({mid: len(v) for mid, v in forwards_by_original(bed, config).items()})
    assert sorted(counts.values()) == [1] * routed, counts


def test_a_session_that_fails_mid_flush_stops_the_others_cleanly_and_nothing_goes_twice(bed, tmp_path, caplog, monkeypatch):
    """A full state disk made the sessions' database reads fail: asyncio.gather raised at once and
    asyncio.run then cancelled the other sessions mid-forward, logging a traceback. Each session
    now ends first; what they had accepted is in the accepted log, so the next flush sends the
    rest, once each."""
    from sqlalchemy.exc import OperationalError

    from mailrouter.act.outbox import Outbox
    from mailrouter.act.admit import Router

    config = configure(bed, tmp_path)
    sessions = open_database(config.database)
    samples = [s for s in demo_samples() if s.outcome == "routed" and not s.duplicate_in]
    rows = Router(config, sessions).admit_batch("sales", 1, [(i + 1, s.raw) for i, s in enumerate(samples)])
    routed = sum(row.outcome == "routed" for row in rows)
    assert routed >= 11  # two sessions at least

    outbox = Outbox(config, sessions)
    payload = Outbox._payload
    failing = {item.id for item in outbox.due("sales")[2:4]}  # one in each of the first two sessions

    def unreadable(self, item):
        if item.id in failing:
            raise OperationalError("SELECT payload", {}, Exception("disk I/O error"))
        return payload(self, item)

    monkeypatch.setattr(Outbox, "_payload", unreadable)
    with pytest.raises(OperationalError):
        outbox.send_due("sales")
    assert "unhandled exception" not in caplog.text and "Traceback" not in caplog.text, caplog.text
    monkeypatch.setattr(Outbox, "_payload", payload)
    while outbox.flush("sales"):
        pass
    counts = Counter({mid: len(v) for mid, v in forwards_by_original(bed, config).items()})
    assert sorted(counts.values()) == [1] * routed, counts
