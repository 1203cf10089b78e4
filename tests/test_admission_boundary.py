"""One message never holds up the others (issue 11 item 2, issue 14 item 1): a message whose own
record raises a database error goes to Quarantine with the reason, the rest of the batch is
routed, and a message that fails the same way twice is quarantined instead of retried forever.

The faults are real database errors, raised by SQLite itself from a trigger on the real file.
"""
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from sqlalchemy import event, func, select, text

from mailrouter.act.admit import Router
from mailrouter.parse.message import parse_message
from mailrouter.store import AssignmentRow, MessageRow, OutboxRow, open_database
from mailrouter.testing.samples import demo_samples
from tests.factories import example_config

NOW = datetime(2026, 12, 4, 9, tzinfo=timezone.utc)


def setup(where):
    url = where if isinstance(where, str) else f"sqlite:///{where / 'r.db'}"
    key_file = None if isinstance(where, str) else where / "router.key"  # never beside the shipped config
    config = replace(example_config(), database=url, marker_key_file=key_file)
    sessions = open_database(config.database)
    samples = [s for s in demo_samples() if s.target == "team:europe"][:3]
    victim = parse_message(samples[1].raw, config.parse).sender
    return config, sessions, [(i + 1, s.raw) for i, s in enumerate(samples)], victim


def count(sessions, table, *where) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(table).where(*where))


def test_a_message_whose_record_raises_a_database_error_is_quarantined_and_the_batch_goes_on(tmp_path):
    config, sessions, batch, victim = setup(tmp_path)
    with sessions.begin() as session:  # SQLite refuses this one sender's assignment: IntegrityError
        session.execute(text(
            "CREATE TRIGGER poison BEFORE INSERT ON assignments WHEN NEW.customer = :victim "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END".replace(":victim", f"'{victim}'")))
    rows = Router(config, sessions).admit_batch("sales", 1, batch)
    assert [row.outcome for row in rows] == ["routed", "quarantined", "routed"]
    assert "IntegrityError" in rows[1].reason and "refused by the test trigger" in rows[1].reason
    assert rows[1].folder == config.folders.quarantine
    assert count(sessions, MessageRow) == 3  # all recorded: the next round fetches none again
    assert count(sessions, MessageRow, MessageRow.outcome == "quarantined") == 1
    assert count(sessions, OutboxRow) == 2 and count(sessions, AssignmentRow) == 2  # nothing half-written


REFUSE = {
    "sqlite": ["CREATE TRIGGER refuse BEFORE INSERT ON assignments WHEN NEW.customer = '{victim}' "
               "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"],
    "postgresql": ["CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.customer = '{victim}' THEN "
                   "RAISE EXCEPTION 'refused by the test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
                   "CREATE TRIGGER refuse BEFORE INSERT ON assignments FOR EACH ROW EXECUTE FUNCTION refuse()"],
}


def test_on_both_stores_the_refused_message_alone_is_quarantined(database_url):
    """PostgreSQL aborts the whole transaction on an error unless a SAVEPOINT contains it."""
    config, sessions, batch, victim = setup(database_url)
    with sessions.begin() as session:
        for statement in REFUSE[sessions.kw["bind"].dialect.name]:
            session.execute(text(statement.replace("{victim}", victim)))
    rows = Router(config, sessions).admit_batch("sales", 1, batch)
    assert [row.outcome for row in rows] == ["routed", "quarantined", "routed"]
    assert "refused by the test trigger" in rows[1].reason
    assert count(sessions, OutboxRow) == 2 and count(sessions, AssignmentRow) == 2


def raising_function(sessions) -> list[str]:
    """A SQL function `poison(x)` that raises in Python: SQLite reports an OperationalError, the
    kind a locked or failing database gives, which may pass: retried once before Quarantine."""
    calls: list[str] = []

    def poison(value):
        calls.append(value)
        raise RuntimeError("disk trouble")

    engine = sessions.kw["bind"]
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.create_function("poison", 1, poison))
    engine.dispose()  # new connections get the function
    return calls


def test_a_message_that_fails_the_same_way_twice_is_quarantined_once_not_retried_forever(tmp_path):
    config, sessions, batch, victim = setup(tmp_path)
    calls = raising_function(sessions)
    with sessions.begin() as session:
        session.execute(text(
            f"CREATE TRIGGER poison BEFORE INSERT ON assignments WHEN NEW.customer = '{victim}' "
            "BEGIN SELECT poison(NEW.customer); END"))
    router = Router(config, sessions)
    with pytest.raises(Exception, match="OperationalError|user-defined function raised exception"):
        router.admit_batch("sales", 1, batch)  # the first time may be the database's passing trouble
    assert count(sessions, MessageRow) == 0  # the batch rolled back whole, to be fetched again
    rows = router.admit_batch("sales", 1, batch)  # the same failure again: the message is at fault
    assert [row.outcome for row in rows] == ["routed", "quarantined", "routed"]
    assert "OperationalError" in rows[1].reason
    assert len(calls) == 2
    # the next round knows all three: nothing is fetched or tried again
    assert router.known_uids("sales", "INBOX", 1, {1, 2, 3}) == {1, 2, 3}
    assert count(sessions, MessageRow, MessageRow.outcome == "quarantined") == 1
    assert count(sessions, OutboxRow) == 2


def test_a_reload_does_not_give_a_failing_message_a_fresh_first_try(tmp_path):
    from mailrouter.metrics import Metrics
    from mailrouter.parse.process import InlineParser
    from mailrouter.runtime.assemble import Shared, assemble

    config, sessions, batch, victim = setup(tmp_path)
    raising_function(sessions)
    with sessions.begin() as session:
        session.execute(text(
            f"CREATE TRIGGER poison BEFORE INSERT ON assignments WHEN NEW.customer = '{victim}' "
            "BEGIN SELECT poison(NEW.customer); END"))
    shared = Shared(sessions, lambda: NOW, Metrics(), InlineParser(), None)
    with pytest.raises(Exception, match="user-defined function raised exception"):
        assemble(config, shared).router.admit_batch("sales", 1, batch)
    rows = assemble(config, shared).router.admit_batch("sales", 1, batch)  # after SIGHUP: built anew
    assert [row.outcome for row in rows] == ["routed", "quarantined", "routed"]


# -- the mailbox loop on the test bed: a big message whose reading fails (issue 14 P1)

@pytest.mark.integration
def test_a_big_message_that_cannot_be_read_is_quarantined_after_two_tries_and_the_mailbox_goes_on(
        bed, tmp_path, monkeypatch):
    """Real Dovecot and SMTP; the fault is the scanner raising on one message's bytes, as a
    MIME structure the scanner cannot cope with once did, every round, stalling filing for all."""
    from mailrouter.commands.demo import deliver_samples, wait_until_filed
    from mailrouter.intake import spool
    from mailrouter.runtime.daemon import Daemon
    from mailrouter.testing.samples import bulk_samples
    from tests.mailcheck import configure, count_rows, shared_copies

    config = configure(bed, tmp_path, large_message_bytes=64 * 1024)
    poison = bulk_samples(1, start=7_100, attachment_every=1, attachment_size=300_000)[0]
    ordinary = [s for s in demo_samples() if s.target == "team:europe"][0]
    marker = parse_message(poison.raw, config.parse).message_id.encode()  # no line ending to differ in
    reads: list[int] = []
    real_feed = spool.MessageScanner.feed

    def feed(self, chunk: bytes) -> None:
        if marker in chunk:
            reads.append(1)
            raise ValueError("the scanner cannot read this structure")
        real_feed(self, chunk)

    monkeypatch.setattr(spool.MessageScanner, "feed", feed)
    deliver_samples(bed, [poison, ordinary])
    daemon = Daemon(config)
    daemon.start()
    try:
        assert wait_until_filed(config, 2, timeout=60), "the ordinary inquiry or the big one was not filed"
        later = [s for s in demo_samples() if s.target == "team:europe"][1]
        deliver_samples(bed, [later])
        assert wait_until_filed(config, 3, timeout=60), "the mailbox stopped after the poison message"
    finally:
        daemon.stop()
    assert len(reads) == 2  # tried twice, then left alone: no loop
    assert count_rows(config, MessageRow.outcome == "quarantined") == 1
    assert count_rows(config, MessageRow.outcome == "routed") == 2
    with open_database(config.database)() as session:
        (row,) = session.scalars(select(MessageRow).where(MessageRow.outcome == "quarantined"))
    assert row.reason == "failed twice the same way: ValueError: the scanner cannot read this structure"
    copies = shared_copies(bed, "sales@example.com")
    assert copies["INBOX"] == []
    assert [len(raws) for folder, raws in copies.items() if "Quarantine" in folder] == [1]
