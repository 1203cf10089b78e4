"""The Prometheus endpoint serves counters that move, and gauges read from the database."""
from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.metrics import Metrics, MetricsServer, start_metrics_server
from mailrouter.store import DECIDED, FILED, MessageRow, OutboxRow

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def served() -> Iterator[tuple[Metrics, MetricsServer]]:
    metrics = Metrics()
    server = start_metrics_server("127.0.0.1", 0, metrics)
    yield metrics, server
    server.stop()


def scrape(server: MetricsServer) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
        return response.read().decode()


def value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{series} not in:\n{text}"
    return float(match.group(1))


def test_counters_move_between_scrapes(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    metrics.message_decided("routed")
    before = scrape(server)
    metrics.message_decided("routed")
    metrics.message_decided("ignored")
    metrics.imap_reconnected("sales")
    metrics.sla_step_taken("remind")
    metrics.sla_breached()
    metrics.forward_accepted(0.7)
    after = scrape(server)
    assert value(before, 'mailrouter_messages_total{outcome="routed"}') == 1
    assert value(after, 'mailrouter_messages_total{outcome="routed"}') == 2
    assert value(after, 'mailrouter_messages_total{outcome="ignored"}') == 1
    assert value(after, 'mailrouter_imap_reconnects_total{mailbox="sales"}') == 1
    assert value(after, 'mailrouter_sla_steps_total{kind="remind"}') == 1
    assert value(after, "mailrouter_sla_breaches_total") == 1
    assert value(after, 'mailrouter_forward_latency_seconds_bucket{le="0.5"}') == 0
    assert value(after, 'mailrouter_forward_latency_seconds_bucket{le="1.0"}') == 1


def test_private_registries_do_not_collide() -> None:
    first, second = Metrics(), Metrics()  # a global registry would refuse the second
    first.message_decided("routed")
    assert second.registry.get_sample_value("mailrouter_messages_total", {"outcome": "routed"}) is None
    assert first.registry.get_sample_value("python_gc_objects_collected_total", {"generation": "0"}) is None


def add_message(session: Session, uid: int, state: str, received: datetime) -> MessageRow:
    row = MessageRow(mailbox="sales", uidvalidity=1, uid=uid, raw_sha256=f"{uid:064}",
                     content_key=f"{uid:064}", state=state, outcome="routed", folder="Routed/x",
                     received_at=received, decided_at=received)
    session.add(row)
    session.flush()
    return row


def test_gauges_from_database(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        add_message(session, 1, FILED, NOW - timedelta(hours=5))
        waiting = add_message(session, 2, DECIDED, NOW - timedelta(minutes=3))
        add_message(session, 3, DECIDED, NOW - timedelta(minutes=1))
        for status in ("pending", "pending", "sent"):
            session.add(OutboxRow(mailbox="sales", message=waiting.id, sender="s@x", recipient="r@x", status=status,
                                  next_attempt_at=NOW, deadline=NOW + timedelta(days=1)))
    metrics = Metrics()
    metrics.update_from_db(sessions, NOW)
    assert metrics.registry.get_sample_value("mailrouter_outbox_depth") == 2
    assert metrics.registry.get_sample_value("mailrouter_oldest_unfiled_age_seconds") == 180


def test_gauges_on_empty_database(sessions: sessionmaker[Session]) -> None:
    metrics = Metrics()
    metrics.update_from_db(sessions, NOW)
    assert metrics.registry.get_sample_value("mailrouter_oldest_unfiled_age_seconds") == 0
