"""Router bookkeeping on a real SQLite database: each message handled once."""
from dataclasses import replace

from sqlalchemy import func, select

from mailrouter.act.admit import Router
from mailrouter.testing.samples import demo_samples
from mailrouter.store import MessageRow, OutboxRow, open_database
from tests.factories import example_config


def router(tmp_path) -> Router:
    config = replace(example_config(), database=f"sqlite:///{tmp_path / 'r.db'}")
    return Router(config, open_database(config.database))


def count(r: Router, table) -> int:
    with r.sessions() as session:
        return session.scalar(select(func.count()).select_from(table))


def test_uidvalidity_change_adopts_the_unfinished_row_instead_of_routing_again(tmp_path):
    r = router(tmp_path)
    raw = demo_samples()[0].raw
    first = r.admit("sales", 100, 7, raw)
    again = r.admit("sales", 200, 1, raw)  # the server renumbered INBOX before we filed it
    assert again.id == first.id and (again.uidvalidity, again.uid) == (200, 1)
    assert count(r, MessageRow) == 1 and count(r, OutboxRow) == 1


def test_the_same_inquiry_in_a_second_mailbox_is_a_duplicate(tmp_path):
    r = router(tmp_path)
    raw = demo_samples()[0].raw
    first = r.admit("sales", 1, 1, raw)
    second = r.admit("info", 1, 1, b"Delivered-To: info@example.com\n" + raw)  # its own trace header
    assert (first.outcome, second.outcome, second.duplicate_of) == ("routed", "duplicate", first.id)
    assert count(r, OutboxRow) == 1  # one forward


def test_a_batch_rotates_the_team_from_one_snapshot(tmp_path):
    r = router(tmp_path)
    french = [s for s in demo_samples() if s.target == "team:europe"][:4]
    rows = r.admit_batch("sales", 1, [(i + 1, s.raw) for i, s in enumerate(french)])
    assert [row.rep for row in rows] == ["zhang", "li", "zhang", "li"]


def test_a_reps_out_of_office_reply_marks_them_away_for_a_day(tmp_path):
    from mailrouter.testing.samples import compose
    from mailrouter.store import RepStatusRow

    r = router(tmp_path)
    ooo = compose("Zhang Wei <zhang@example.com>", "自动回复: Anfrage Leiterplatten", "我正在休假，12月1日回来。",
                  headers={"Auto-Submitted": "auto-replied",
                           "In-Reply-To": "<mr.0123456789abcdef01234567.zhang@example.com>"}, n=900)
    row = r.admit("sales", 1, 1, ooo)
    assert row.outcome == "ignored" and "auto-reply to our forward" in row.reason
    with r.sessions() as session:
        status = session.get(RepStatusRow, "zhang")
    assert status is not None and status.away_until > row.received_at
    german = demo_samples()[0].raw  # german-pcb names zhang; the europe team covers for him
    routed = r.admit("sales", 1, 2, german)
    assert routed.rep == "li" and "rep Zhang Wei 张伟 is away" in routed.reason


def test_a_forged_rep_out_of_office_is_shown_to_the_manager_and_marks_nobody_away(tmp_path):
    """issue 14 item 7: an auto-reply From a rep that answers none of our forwards may be forged."""
    from mailrouter.testing.samples import compose
    from mailrouter.store import RepStatusRow

    r = router(tmp_path)
    ooo = compose("Zhang Wei <zhang@example.com>", "自动回复: Anfrage Leiterplatten", "我正在休假。",
                  headers={"Auto-Submitted": "auto-replied"}, n=901)
    row = r.admit("sales", 1, 1, ooo)
    assert row.outcome == "unrecognized" and "possibly forged" in row.reason
    with r.sessions() as session:
        assert session.get(RepStatusRow, "zhang") is None


def test_a_routed_inquiry_that_cannot_be_forwarded_is_recorded_as_unrecognized(tmp_path):
    r = router(tmp_path)
    german = demo_samples()[0].raw
    # A non-ASCII local part needs SMTPUTF8 at the rep's server: no Reply-To the rep could use.
    unusable = german.replace(b"From: Klaus Becker <k.becker@", b"From: Klaus Becker <k.b\xc3\xa4cker@", 1)
    assert unusable != german
    rows = r.admit_batch("sales", 1, [(1, unusable), (2, demo_samples()[1].raw)])
    assert rows[0].outcome == "unrecognized" and "cannot forward" in rows[0].reason
    with r.sessions() as session:
        stored = session.get(MessageRow, rows[0].id)
        assert (stored.outcome, stored.rep, stored.forward_message_id) == ("unrecognized", None, None)
        assert "cannot forward" in stored.reason and stored.folder == rows[0].folder
        assert session.scalar(select(func.count()).select_from(OutboxRow)
                              .where(OutboxRow.message == rows[0].id)) == 0
    assert rows[1].outcome == "routed"  # the rest of the batch goes on


def test_a_message_whose_registry_lookup_raises_is_quarantined_and_the_batch_goes_on(tmp_path, monkeypatch):
    """One sender's broken registry lookup must not stop the rest of the batch (issue 11 item 2)."""
    import mailrouter.act.admit as admit

    config = replace(example_config(), database=f"sqlite:///{tmp_path / 'r.db'}")
    config = replace(config, registry=replace(config.registry, enabled=True))
    r = Router(config, open_database(config.database))
    samples = [s for s in demo_samples() if s.target == "team:europe"][:3]
    real = admit.lookup_sender

    def broken_for_one(session, inquiry, *args, **kwargs):
        if inquiry.message_id == victim:
            raise ValueError("key extraction failed")
        return real(session, inquiry, *args, **kwargs)

    from mailrouter.parse.message import parse_message
    victim = parse_message(samples[1].raw, config.parse).message_id
    monkeypatch.setattr(admit, "lookup_sender", broken_for_one)
    rows = r.admit_batch("sales", 1, [(i + 1, s.raw) for i, s in enumerate(samples)])
    assert [row.outcome for row in rows] == ["routed", "quarantined", "routed"]
    assert "key extraction failed" in rows[1].reason
    with r.sessions() as session:
        assert session.scalar(select(func.count()).select_from(MessageRow)
                              .where(MessageRow.outcome == "quarantined")) == 1
    assert count(r, OutboxRow) == 2  # the other two were forwarded


# -- what counts as a duplicate (issue 14 P9)

def clocked_router(tmp_path, now: list):
    config = replace(example_config(), database=f"sqlite:///{tmp_path / 'r.db'}")
    return Router(config, open_database(config.database), clock=lambda: now[0])


def test_another_reply_to_sender_or_content_type_is_another_inquiry_not_a_duplicate(tmp_path):
    """Review P9 (hostile 033): the same message with another Reply-To was filed in Duplicates."""
    r = router(tmp_path)
    raw = demo_samples()[0].raw
    first = r.admit("sales", 1, 1, raw)
    variants = [b"Reply-To: Other Buyer <other@buyer-033.test>\n" + raw,
                b"Sender: assistant@buyer.test\n" + raw,
                raw.replace(b'charset="utf-8"', b'charset="iso-8859-1"', 1)]
    assert variants[2] != raw
    rows = [r.admit("info", 1, uid, variant) for uid, variant in enumerate(variants, start=2)]
    assert [row.outcome for row in rows] == ["routed"] * 3, [row.reason for row in rows]
    assert first.outcome == "routed"


def test_a_copy_in_the_same_mailbox_is_a_duplicate_only_within_the_window(tmp_path):
    from datetime import datetime, timedelta, timezone

    from mailrouter.act.admit import DUPLICATE_WINDOW

    now = [datetime(2026, 12, 1, 9, tzinfo=timezone.utc)]
    r = clocked_router(tmp_path, now)
    raw = demo_samples()[0].raw
    first = r.admit("sales", 1, 1, raw)
    now[0] += timedelta(hours=1)
    again = r.admit("sales", 1, 2, raw)  # delivered twice
    now[0] += DUPLICATE_WINDOW + timedelta(minutes=1)
    later = r.admit("sales", 1, 3, raw)  # the same bytes, over a week later: not held back
    other_mailbox = r.admit("info", 1, 1, raw)  # another mailbox: a copy whenever it comes
    assert (first.outcome, again.outcome, later.outcome, other_mailbox.outcome) == (
        "routed", "duplicate", "routed", "duplicate")


def test_unreadable_junk_is_quarantined_not_a_duplicate_of_other_junk(tmp_path):
    """Review P9: 1-3 byte files were filed as Duplicates of each other."""
    r = router(tmp_path)
    rows = [r.admit("sales", 1, uid, junk) for uid, junk in enumerate([b"x", b"x\n", b" x"], start=1)]
    assert [row.outcome for row in rows] == ["quarantined"] * 3
