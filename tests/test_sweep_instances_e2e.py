"""Issue 17 item 2: ladder steps fire once across instances. Two instances sweep one mailbox at
the same moment (as when a holder cut off from the network still sweeps while the instance that
took its lease sweeps too), on the mail test bed and on both stores: each reminder,
escalation and reassignment is taken by one of them, both sweeps finish, and each notice
reaches its rep's mailbox once."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailrouter.intake.imap import Mailbox
from mailrouter.runtime.mailbox import imap_settings
from mailrouter.sla.sweep import FollowUp
from mailrouter.store import AssignmentRow, OutboxRow, SlaStepRow, close_database, open_database
from mailrouter.testing.samples import FRENCH, Sample, compose
from tests.mailcheck import MovableClock, configure, parsed, route_all, run_until
from tests.test_sla_e2e import TUESDAY_10

pytestmark = pytest.mark.integration

INQUIRIES = 6
STEPS = (("remind@5m", 6), ("escalate@15m", 16), ("reassign@30m", 31))  # step, minutes after routing


def inquiries() -> list[Sample]:
    """Distinct French buyers: rule "europe", team europe (zhang, li; supervisor wang)."""
    return [Sample(f"buyer {i}", ("sales@example.com",),
                   compose(f"Buyer {i} <buyer{i}@maison{i}.fr>", f"Demande de prix #{i}", f"{FRENCH}\n\nRef. {i}",
                           n=500 + i), "routed", "team:europe")
            for i in range(INQUIRIES)]


def sweep_together(config, url: str, clock: MovableClock) -> list[int]:
    """Two instances' sweeps of mailbox sales at once, each over its own IMAP connection and
    database sessions; the steps each took. An exception in either fails the test."""
    mailbox = next(m for m in config.mailboxes if m.name == "sales")
    go, taken, errors = threading.Barrier(2), [], []

    def instance() -> None:
        conn = None
        try:
            conn = Mailbox.connect(imap_settings(mailbox))
            followup = FollowUp(config, open_database(url), clock)
            go.wait(60)
            taken.append(followup.sweep(mailbox, conn).taken)
        except BaseException as exc:  # noqa: BLE001 (reported below, not lost in the thread)
            errors.append(exc)
            go.abort()  # the other instance stops waiting at once; this error is the one to see
        finally:
            if conn is not None:
                conn.logout()

    threads = [threading.Thread(target=instance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    return taken


def test_two_instances_sweeping_at_once_take_each_ladder_step_once(bed, tmp_path, database_url):
    url = database_url
    config = configure(bed, tmp_path, {"sla": {"sweep_interval": 3600, "allow_no_reply_source": True}},
                       database=url)
    clock = MovableClock(TUESDAY_10)
    try:
        route_all(bed, config, inquiries(), clock)
        sessions = open_database(url)
        with sessions() as session:
            first = list(session.scalars(select(AssignmentRow.id)))
        assert len(first) == INQUIRIES
        for step, minutes in STEPS:
            clock.now = TUESDAY_10 + timedelta(minutes=minutes)
            taken = sweep_together(config, url, clock)
            assert sum(taken) == INQUIRIES, (step, taken)  # each step once, by one instance or the other
            with sessions() as session:
                done = Counter(session.scalars(select(SlaStepRow.assignment).where(SlaStepRow.step == step)))
            assert done == {a: 1 for a in first}, step
        # deliver what the sweeps queued, and read it as the reps' mail clients would
        run_until(config, lambda: _pending(sessions) == 0, "the notices sent", 120, clock)
    finally:
        close_database(url)
    notices = Counter(str(parsed(raw)["Message-ID"]) for user in ("zhang", "li", "wang")
                      for raw in bed.fetch_all(f"{user}@example.com")
                      if str(parsed(raw)["Message-ID"]).startswith("<mr.notice."))
    # per assignment: the rep's reminder, the supervisor's escalation, the "reassigned away" notice
    assert len(notices) == 3 * INQUIRIES, sorted(notices)
    assert set(notices.values()) == {1}, notices.most_common(3)


def _pending(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "pending"))
