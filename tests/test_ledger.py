"""The message ledger (act/ledger.py): each arrow of a message's life, and only those."""
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from mailrouter.act import ledger
from mailrouter.act.admit import Router
from mailrouter.store import ADOPTED, DECIDED, FILED, SENT, MessageRow, open_database
from mailrouter.testing.samples import demo_samples
from tests.factories import example_config

NOW = datetime(2026, 12, 4, 9, tzinfo=timezone.utc)


@pytest.mark.parametrize("current,new", [(FILED, DECIDED), (FILED, SENT), (SENT, DECIDED), (ADOPTED, SENT),
                                         (ADOPTED, FILED), (DECIDED, ADOPTED)])
def test_impossible_arrows_are_refused(current, new):
    with pytest.raises(ledger.ImpossibleTransition, match=f"from '{current}' to '{new}'"):
        ledger.check(current, new)


@pytest.mark.parametrize("current,new", [(DECIDED, SENT), (DECIDED, FILED), (SENT, FILED)])
def test_the_diagrams_arrows_are_allowed(current, new):
    ledger.check(current, new)


def routed_and_adopted(tmp_path):
    config = replace(example_config(), database=f"sqlite:///{tmp_path / 'l.db'}")
    router = Router(config, open_database(config.database), clock=lambda: NOW)
    row = router.admit("sales", 1, 1, next(s for s in demo_samples() if s.target == "team:europe").raw)
    with router.sessions.begin() as session:
        ledger.adopted(session, [dict(mailbox="sales", source="INBOX", uidvalidity=1, uid=99, raw_sha256="",
                                      content_key="", size=0, reason="history", folder="INBOX", keywords="",
                                      received_at=NOW, decided_at=NOW, file_attempts=0)])
    return router, row


def states(router) -> dict[int, str]:
    with router.sessions() as session:
        return {uid: state for uid, state in session.execute(select(MessageRow.uid, MessageRow.state))}


def test_filing_moves_only_live_rows_and_sending_only_decided_ones(tmp_path):
    router, row = routed_and_adopted(tmp_path)
    with router.sessions() as session:
        adopted_id = session.scalar(select(MessageRow.id).where(MessageRow.uid == 99))
    with router.sessions.begin() as session:
        ledger.sent(session, [row.id, adopted_id], NOW)
    assert states(router) == {1: SENT, 99: ADOPTED}  # history is never "sent"
    router.mark_filed([row, MessageRow(id=adopted_id, outcome="adopted", message_id="", sender="", rep=None,
                                       reason="", folder="INBOX", rule=None, mailbox="sales",
                                       received_at=NOW)])
    assert states(router) == {1: FILED, 99: ADOPTED}  # ...nor "filed": it stays where people left it
    with router.sessions.begin() as session:
        ledger.sent(session, [row.id], NOW + timedelta(minutes=1))
    assert states(router) == {1: FILED, 99: ADOPTED}  # a late acceptance does not reopen a filed row


def test_a_decision_that_is_no_longer_open_cannot_be_replaced(tmp_path):
    router, row = routed_and_adopted(tmp_path)
    router.mark_filed([row])
    with router.sessions.begin() as session:
        filed = session.get(MessageRow, row.id)
        with pytest.raises(ledger.ImpossibleTransition, match="no longer open"):
            ledger.redecided(session, filed, {"outcome": "unrecognized"})


def test_an_undeliverable_forward_files_a_waiting_copy_for_the_manager_and_leaves_a_filed_one(tmp_path):
    router, row = routed_and_adopted(tmp_path)
    with router.sessions.begin() as session:
        waiting = session.get(MessageRow, row.id)
        ledger.undeliverable(waiting, "550 no such user", "Undeliverable", "$mr_undeliverable")
        assert (waiting.state, waiting.outcome, waiting.folder) == (SENT, "undeliverable", "Undeliverable")
        waiting.state, waiting.folder = FILED, "Routed/li"
        ledger.undeliverable(waiting, "550 again", "Undeliverable", "$mr_undeliverable")
        assert (waiting.state, waiting.folder) == (FILED, "Routed/li")  # a reassigned copy stays put
        assert waiting.reason.endswith("; 550 no such user; 550 again")


# -- the one filer (act/filing.py): a filed copy's refile stays recorded until it is done

def filed_row(state: str = FILED, folder: str = "Routed/Klaus") -> MessageRow:
    return MessageRow(id=1, state=state, folder=folder, keywords="mr-routed mr-klaus", message_id="<a@b>",
                      refile_from=None, rep="klaus", file_attempts=2)


def test_a_filed_copys_refile_remembers_where_it_is_until_the_filer_has_moved_it():
    row = filed_row()
    ledger.refiled(row, "Routed/Li", ("mr-routed", "mr-li"), "li")
    assert (row.folder, row.refile_from, row.keywords, row.rep) == ("Routed/Li", "Routed/Klaus", "mr-routed mr-li", "li")
    assert row.file_attempts == 0  # the refile's own tries are counted afresh
    ledger.refiled(row, "Pool", ("mr-pooled",))  # a second step before the move: the copy is still where it was
    assert (row.folder, row.refile_from) == ("Pool", "Routed/Klaus")
    ledger.refiled(row, "Routed/Klaus", ("mr-routed",), "klaus")  # back where it is: nothing to move
    assert row.refile_from is None


def test_a_copy_not_filed_yet_is_simply_filed_in_the_new_folder():
    row = filed_row(state=SENT)
    ledger.refiled(row, "Pool", ("mr-pooled",))
    assert (row.folder, row.refile_from) == ("Pool", None)


def test_where_the_copy_is_decides_the_refile():
    from mailrouter.act.filing import refile_verdict

    row = filed_row()
    ledger.refiled(row, "Routed/Li", ("mr-routed", "mr-li"), "li")
    asked: list[str] = []

    def in_new(uids):
        return lambda: asked.append("new") or uids

    assert refile_verdict(row, [7], in_new([])).uids == [7] and asked == []  # still there: move it
    done = refile_verdict(row, [], in_new([3]))  # moved, then cut off before that was recorded
    assert (done.uids, done.note, done.stays) == ([], "", False)
    gone = refile_verdict(row, [], in_new([]))  # a person moved or deleted it: left alone
    assert (gone.uids, gone.stays) == ([], False) and "neither Routed/Klaus nor Routed/Li" in gone.note
    row.message_id = ""
    blind = refile_verdict(row, [], in_new([]))
    assert blind.stays and "no Message-ID" in blind.note
