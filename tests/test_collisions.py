"""撞单 notices: the supervisor's webhook fires only for a collision that was really recorded."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from mailrouter.registry.collisions import CollisionCheck
from mailrouter.sla.replies import Outgoing
from mailrouter.sla.webhook import WebhookTarget
from mailrouter.store import ChatPostRow, open_database
from tests.factories import example_config

NOW = datetime(2026, 11, 10, 2, tzinfo=timezone.utc)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.rows: list[int | None] = []

    def notify(self, target, notice, mention=None, row=None, window=None) -> bool:
        self.sent.append(notice.customer)
        self.rows.append(row)
        return True


def check_and_sessions(tmp_path):
    config = example_config()
    config = replace(config, database=f"sqlite:///{tmp_path / 'c.db'}",
                     sla=replace(config.sla, webhooks=(WebhookTarget("ops", "https://hooks.example.com/x"),)))
    hooks = Recorder()
    return CollisionCheck(config, lambda: NOW, hooks), open_database(config.database), hooks


OUT = Outgoing(message_id="<m1@example.com>", sender="li@example.com",
               recipients=frozenset({"buyer@acme.example"}), references=frozenset(), sent_at=NOW)


def test_collision_webhook_is_not_sent_when_the_transaction_rolls_back(tmp_path):
    check, sessions, hooks = check_and_sessions(tmp_path)
    with pytest.raises(RuntimeError):
        with sessions.begin() as session:
            check._record(session, "buyer@acme.example", "zhang", "li", OUT)
            raise RuntimeError("the reply recorder failed later in the same transaction")
    assert hooks.sent == []
    with sessions() as session:  # nor kept for a later post
        assert session.scalars(select(ChatPostRow)).all() == []


def test_collision_webhook_is_sent_once_the_transaction_commits(tmp_path):
    check, sessions, hooks = check_and_sessions(tmp_path)
    with sessions.begin() as session:
        check._record(session, "buyer@acme.example", "zhang", "li", OUT)
        assert hooks.sent == []  # not while the transaction may still roll back
    assert hooks.sent == ["buyer@acme.example"]
    with sessions() as session:  # kept until the post is done (issue 15 item 3)
        assert [row.id for row in session.scalars(select(ChatPostRow))] == hooks.rows
