"""Issue 12 item 1 on real servers: a first start on a mailbox with history adopts it and routes
only the recent unread mail; later arrivals route; a restart or UIDVALIDITY change routes nothing."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from mailrouter.runtime.daemon import Daemon
from mailrouter.store import ADOPTED, FILED, AssignmentRow, MessageRow, SlaStepRow, open_database
from mailrouter.testing.samples import bulk_samples
from mailrouter.testing.testbed import TestBed
from tests.mailcheck import configure, count_rows, forwards_by_original, parsed, wait_for

pytestmark = pytest.mark.integration

SALES = "sales@example.com"
# read, answered, both, and unread: all old, so all adopted
OLD_FLAGS = [("\\Seen",), ("\\Answered",), ("\\Seen", "\\Answered"), ()]


def _ids(samples) -> set[str]:
    return {str(parsed(s.raw)["Message-ID"]) for s in samples}


def _run_rounds(config, rounds: int, predicate=lambda: True, what: str = "rounds") -> None:
    """Run the daemon until its sales worker has completed `rounds` rounds (the first is the catch-up) and `predicate` holds."""
    daemon = Daemon(config)
    daemon.start()
    try:
        worker = daemon.workers[0]
        wait_for(lambda: worker.rounds >= rounds and predicate(), what, timeout=90)
    finally:
        daemon.stop()


def _table_count(config, table) -> int:
    with open_database(config.database)() as session:
        return session.scalar(select(func.count()).select_from(table))


def test_first_start_adopts_history_and_routes_only_recent_unread(bed: TestBed, tmp_path, caplog):
    config = configure(bed, tmp_path)
    now = datetime.now(timezone.utc)
    samples = bulk_samples(308)
    old, recent, recent_read, later = samples[:300], samples[300:305], samples[305:307], samples[307]
    bed.append(SALES, [(s.raw, OLD_FLAGS[i % 4], now - timedelta(days=10)) for i, s in enumerate(old)])
    bed.append(SALES, [(s.raw, (), now - timedelta(hours=2)) for s in recent]
               + [(s.raw, ("\\Seen",), now - timedelta(hours=2)) for s in recent_read])

    caplog.set_level(logging.INFO, logger="mailrouter.mailbox")
    daemon = Daemon(config)
    daemon.start()
    try:
        wait_for(lambda: count_rows(config, MessageRow.state == FILED) == 5, "the 5 recent unread filed", 90)
        assert count_rows(config, MessageRow.state == ADOPTED) == 302
        bed.deliver(SALES, later.raw, mail_from="buyer@example.org")
        wait_for(lambda: count_rows(config, MessageRow.state == FILED) == 6, "the later arrival filed", 60)
    finally:
        daemon.stop()
    assert "sales: first start: adopted 302, routing 5 unread from the last 24h" in caplog.text

    forwarded = set(forwards_by_original(bed, config))
    assert forwarded == _ids(recent) | _ids([later])
    # adopted mail is never on the ladder: only the six routed messages have assignments
    assert _table_count(config, AssignmentRow) == 6
    with open_database(config.database)() as session:
        adopted_ids = select(MessageRow.id).where(MessageRow.state == ADOPTED)
        assert session.scalar(select(func.count()).select_from(SlaStepRow)
                              .where(SlaStepRow.assignment.in_(
                                  select(AssignmentRow.id).where(AssignmentRow.message.in_(adopted_ids))))) == 0
    # left untouched where it was: still in INBOX, flags as the reps left them
    client = bed.imap(SALES)
    try:
        client.select_folder("INBOX", readonly=True)
        flags = client.fetch(client.search(["ALL"]), ["FLAGS"])
    finally:
        client.logout()
    assert len(flags) == 302
    unread = [uid for uid, item in flags.items() if b"\\Seen" not in item[b"FLAGS"]]
    answered = [uid for uid, item in flags.items() if b"\\Answered" in item[b"FLAGS"]]
    assert (len(unread), len(answered)) == (150, 150)  # as appended: fetching never set \Seen

    _run_rounds(config, 1, what="a restart's rounds")  # restart: the database knows the mailbox
    assert count_rows(config, MessageRow.state == ADOPTED) == 302
    assert count_rows(config, MessageRow.state != ADOPTED) == 6

    bed.change_uidvalidity(SALES)
    _run_rounds(config, 1, what="rounds after the UIDVALIDITY change")
    assert count_rows(config, MessageRow.state != ADOPTED) == 6  # nothing routed again
    assert count_rows(config, MessageRow.state == ADOPTED) == 302 * 2  # re-adopted under the new UIDVALIDITY
    assert set(forwards_by_original(bed, config)) == forwarded


def test_rounds_after_connect_find_new_mail_from_the_uid_cursor(bed: TestBed, tmp_path, monkeypatch):
    """Issue 12 item 2: only the connect round lists the whole INBOX; a new arrival is found
    above the UID cursor (real server; the adapter's methods are only counted, not replaced)."""
    from collections import Counter

    from mailrouter.intake.imap import Mailbox
    calls: Counter[str] = Counter()
    for name in ("unprocessed_uids", "new_uids_after"):
        real = getattr(Mailbox, name)
        monkeypatch.setattr(Mailbox, name, lambda self, *a, _real=real, _name=name: (
            calls.update([_name]), _real(self, *a))[1])
    config = configure(bed, tmp_path)
    samples = bulk_samples(21)
    bed.append(SALES, [(s.raw, ("\\Seen",), datetime.now(timezone.utc) - timedelta(days=3)) for s in samples[:20]])
    daemon = Daemon(config)
    daemon.start()
    try:
        wait_for(lambda: count_rows(config, MessageRow.state == ADOPTED) == 20, "history adopted", 60)
        bed.deliver(SALES, samples[20].raw, mail_from="buyer@example.org")
        wait_for(lambda: count_rows(config, MessageRow.state == FILED) == 1, "the arrival filed", 60)
    finally:
        daemon.stop()
    assert set(forwards_by_original(bed, config)) == _ids(samples[20:])
    assert calls["unprocessed_uids"] == 2  # the connect rounds of sales and info, nothing more
    assert calls["new_uids_after"] >= 1


def test_a_mailbox_added_to_an_installation_adopts_its_history(bed: TestBed, tmp_path):
    """Issue 12 item 1: adding a mailbox to an installation that already routes is a first start
    for that mailbox only: its history is adopted, the known mailbox routes nothing again."""
    import tomllib

    from tests.mailcheck import ROOT
    sales_only = [m for m in tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))["mailbox"]
                  if m["name"] == "sales"]
    config = configure(bed, tmp_path, {"mailbox": sales_only})
    samples = bulk_samples(12)
    first, history, later = samples[:2], samples[2:11], samples[11]
    for sample in first:
        bed.deliver(SALES, sample.raw, mail_from="buyer@example.org")
    _run_rounds(config, 2, lambda: count_rows(config, MessageRow.state == FILED) == 2, "sales routed")
    # info@ has years of mail the installation never watched
    bed.append("info@example.com", [(s.raw, ("\\Seen",), datetime.now(timezone.utc) - timedelta(days=400))
                                    for s in history])

    config = configure(bed, tmp_path)  # both mailboxes now, same database
    assert [m.name for m in config.mailboxes] == ["sales", "info"]
    daemon = Daemon(config)
    daemon.start()
    try:
        wait_for(lambda: count_rows(config, MessageRow.state == ADOPTED) == len(history), "info's history adopted", 60)
        bed.deliver("info@example.com", later.raw, mail_from="buyer@example.org")
        wait_for(lambda: count_rows(config, MessageRow.state == FILED) == 3, "the new arrival filed", 60)
    finally:
        daemon.stop()
    assert set(forwards_by_original(bed, config)) == _ids(first) | _ids([later])
    with open_database(config.database)() as session:
        adopted_in = set(session.scalars(select(MessageRow.mailbox).where(MessageRow.state == ADOPTED)))
    assert adopted_in == {"info"}  # sales was not first-started again


def test_mail_arriving_while_an_assign_folder_is_selected_is_routed_in_the_same_round(bed: TestBed, tmp_path):
    """Found by bench/replay.py: the first inquiry after a start waited 30 s for the next ladder
    sweep. The Assign/ check selects other folders; mail that reached INBOX meanwhile was not
    looked for after INBOX was selected again, and IDLE reports only what arrives after it starts."""
    from mailrouter.intake.imap import Mailbox
    from mailrouter.runtime.mailbox import imap_settings

    config = configure(bed, tmp_path)
    daemon = Daemon(config)  # not started: its sales worker is driven round by round
    worker = daemon.workers[0]
    conn = Mailbox.connect(imap_settings(worker.mailbox))
    try:
        validity = conn.select_inbox()
        conn.ensure_folders(worker._static_folders())
        real = worker._assign_round
        sample = bulk_samples(1)[0]

        def assign_round_while_mail_arrives(c):
            selected = real(c)  # the first start of every Assign/ folder selects each of them
            bed.deliver(SALES, sample.raw, mail_from="buyer@example.org")
            return selected

        worker._assign_round = assign_round_while_mail_arrives
        worker.round(conn, validity)
        assert count_rows(config, MessageRow.message_id == str(parsed(sample.raw)["Message-ID"])) == 1
    finally:
        conn.logout()
        daemon.stop()
