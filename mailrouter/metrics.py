"""Prometheus metrics: what the daemon did (counters, latency) and what waits (gauges from the DB).

Counters are bumped where things happen (a decision recorded, a forward accepted, a
reconnect); the gauges are read from the database by `update_from_db`, because the database,
not process memory, is the truth after a restart. Everything lives on a private
CollectorRegistry: two daemons in one test process (or a test and a daemon) never collide,
and the endpoint shows only mailrouter's series, not the client library's process defaults.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.store import FILED, MessageRow, OutboxRow, utcnow

log = logging.getLogger("mailrouter.metrics")
NAMESPACE = "mailrouter"
# Seconds from arrival to the rep's server accepting the forward: the routing target is under
# a minute; the tail shows SMTP retries (minutes) and outages (hours).
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600)


class Metrics:
    """The daemon's series; pass one instance to the router, outbox, workers and SLA sweep."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True) if registry is None else registry
        r, ns = self.registry, NAMESPACE
        self.messages = Counter("messages", "Messages decided, by outcome", ["outcome"], namespace=ns, registry=r)
        self.imap_reconnects = Counter("imap_reconnects", "IMAP sessions lost and reopened",
                                       ["mailbox"], namespace=ns, registry=r)
        self.sla_steps = Counter("sla_steps", "SLA ladder steps taken, by kind", ["kind"], namespace=ns, registry=r)
        self.sla_breaches = Counter("sla_breaches", "Assignments whose first reply came after its due time",
                                    namespace=ns, registry=r)
        self.forward_latency = Histogram("forward_latency_seconds", "Arrival to forward accepted by SMTP",
                                         namespace=ns, registry=r, buckets=LATENCY_BUCKETS)
        self.outbox_depth = Gauge("outbox_depth", "Forwards waiting to be sent", namespace=ns, registry=r)
        self.oldest_unfiled_age = Gauge("oldest_unfiled_age_seconds",
                                        "Age of the oldest message not yet filed (0 when none)",
                                        namespace=ns, registry=r)

    def message_decided(self, outcome: str) -> None:
        self.messages.labels(outcome=outcome).inc()

    def forward_accepted(self, seconds: float) -> None:
        self.forward_latency.observe(max(seconds, 0.0))

    def imap_reconnected(self, mailbox: str) -> None:
        self.imap_reconnects.labels(mailbox=mailbox).inc()

    def sla_step_taken(self, kind: str) -> None:
        self.sla_steps.labels(kind=kind).inc()

    def sla_breached(self) -> None:
        self.sla_breaches.inc()

    def update_from_db(self, sessions: sessionmaker[Session], now: datetime | None = None) -> None:
        """Refresh the gauges; cheap (two indexed aggregates), so call it every minute or so."""
        now = utcnow() if now is None else now
        depth, oldest = read_queue_state(sessions)
        self.outbox_depth.set(depth)
        self.oldest_unfiled_age.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)


def read_queue_state(sessions: sessionmaker[Session]) -> tuple[int, datetime | None]:
    """(pending forwards, arrival of the oldest unfiled message)."""
    with sessions() as session:
        depth = session.scalar(select(func.count()).select_from(OutboxRow)
                               .where(OutboxRow.status == "pending")) or 0
        oldest = session.scalar(select(func.min(MessageRow.received_at)).where(MessageRow.state != FILED))
    return int(depth), _aware(oldest)


def _aware(value: datetime | None) -> datetime | None:
    # Stored times are UTC; an aggregate may come back without the marker on some dialects.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_metrics_server(host: str, port: int, metrics: Metrics) -> MetricsServer:
    """Serve /metrics in a background thread; port 0 picks a free one (see .port).

    Bind to 127.0.0.1 unless a scraper on another host needs it: the figures name mailboxes.
    """
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return MetricsServer(server, thread)
