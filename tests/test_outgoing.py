"""The one composer (act/outgoing.py): every notice and digest carries the same marks, comes
from a shared mailbox and is given up at the retry deadline like a forward."""
import socket
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default

from sqlalchemy import select

from mailrouter.act.outbox import Outbox
from mailrouter.act.outgoing import queue_notice
from mailrouter.model import ROUTER_HEADER
from mailrouter.registry.collisions import CollisionCheck
from mailrouter.reports.schedule import _queue, parse_schedule
from mailrouter.sla.replies import Outgoing
from mailrouter.store import OutboxRow, open_database
from tests.factories import example_config

NOW = datetime(2026, 12, 4, 9, tzinfo=timezone.utc)
LOOP_HEADERS = ("Auto-Submitted", "X-Auto-Response-Suppress")


def setup(tmp_path, **smtp):
    config = replace(example_config(), database=f"sqlite:///{tmp_path / 'o.db'}")
    if smtp:
        config = replace(config, smtp=replace(config.smtp, server=replace(config.smtp.server, **smtp)))
    return config, open_database(config.database)


def queued(sessions) -> list[OutboxRow]:
    with sessions() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def test_notices_collisions_and_digests_carry_the_same_loop_prevention_marks(tmp_path):
    config, sessions = setup(tmp_path)
    owner, rep = list(config.reps)[:2]
    with sessions.begin() as session:
        queue_notice(session, config, "li@example.com", "Reminder: answer\r\nBcc: evil@x.test", "body",
                     "<mr.notice.1@example.com>", NOW)
        _queue(session, config, "wang", parse_schedule("daily", "08:00"), NOW, NOW)
        CollisionCheck(config, lambda: NOW)._notify(session, "buyer@acme.de", owner, rep, Outgoing(
            "<x@y>", config.reps[rep].email, frozenset({"buyer@acme.de"}), frozenset(), NOW), NOW)
    rows = queued(sessions)
    assert len(rows) == 3
    shared = {m.address for m in config.mailboxes}
    kinds = []
    for row in rows:
        mail = message_from_bytes(row.payload, policy=default)
        assert [mail[h] for h in LOOP_HEADERS] == ["auto-generated", "All"], mail["Subject"]
        assert row.sender in shared and row.sender in mail["From"]
        assert row.deadline == NOW + timedelta(seconds=config.smtp.retry_deadline)
        assert "\n" not in mail["Subject"] and mail["Bcc"] is None  # customer text reached no header raw
        kinds.append(mail[ROUTER_HEADER].split(";")[0])
    assert kinds == ["notice", "digest", "notice"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_notice_is_retried_until_its_deadline_then_given_up(tmp_path):
    config, sessions = setup(tmp_path, host="127.0.0.1", port=closed_port(), tls="none", user="")
    with sessions.begin() as session:
        queue_notice(session, config, "li@example.com", "Reminder", "body", "<mr.notice.2@example.com>", NOW)
    name = config.mailboxes[0].name
    assert Outbox(config, sessions, clock=lambda: NOW).flush(name) == 0  # nobody listens: try again later
    (row,) = queued(sessions)
    assert (row.status, row.attempts) == ("pending", 1) and row.last_error
    late = NOW + timedelta(seconds=config.smtp.retry_deadline + 1)
    Outbox(config, sessions, clock=lambda: late).flush(name)
    (row,) = queued(sessions)
    assert row.status == "failed" and "retry deadline passed" in row.last_error
