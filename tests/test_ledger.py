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
