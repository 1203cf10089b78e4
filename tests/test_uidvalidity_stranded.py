"""Rows stranded by a UIDVALIDITY change are reconciled: a copy the daemon had already moved,
whose row still said "sent" (it died before recording the move), is marked filed once a round
under the new UIDVALIDITY has seen INBOX whole; `status` then counts nothing as unfiled."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, update

from mailrouter.commands.status import format_status, status_summary
from mailrouter.store import FILED, SENT, MessageRow, open_database
from mailrouter.testing.samples import demo_samples
from tests.mailcheck import configure, route_all, run_until

pytestmark = pytest.mark.integration

SALES = "sales@example.com"


def test_rows_moved_but_still_sent_before_a_uidvalidity_change_are_filed_and_status_agrees(bed, tmp_path):
    config = configure(bed, tmp_path)
    samples = [s for s in demo_samples() if s.to == (SALES,) and s.outcome == "routed"]
    route_all(bed, config, samples[:4])
    sessions = open_database(config.database)
    with sessions.begin() as session:  # as after a SIGKILL between the MOVE and its record
        stranded = session.scalars(select(MessageRow.id).where(MessageRow.mailbox == "sales")
                                   .order_by(MessageRow.id).limit(3)).all()
        session.execute(update(MessageRow).where(MessageRow.id.in_(stranded))
                        .values(state=SENT, filed_at=None))
    assert bed.fetch_all(SALES) == []  # their copies are in Routed/ already
    bed.change_uidvalidity(SALES)

    def states() -> dict[int, str]:
        with sessions() as session:
            return dict(session.execute(select(MessageRow.id, MessageRow.state)
                                        .where(MessageRow.id.in_(stranded))).all())

    # INTERNALDATE is whole seconds and mail from the first start's second counts as history
    # after a UIDVALIDITY change (firststart.adopt_history): the new mail must come a second later
    time.sleep(1.0)
    route_all(bed, config, samples[4:5])  # a round under the new UIDVALIDITY routes new mail ...
    run_until(config, lambda: set(states().values()) == {FILED}, "the stranded rows filed", timeout=30)

    summary = status_summary(sessions, config, datetime.now(timezone.utc))
    sales = next(mb for mb in summary.mailboxes if mb.name == "sales")
    assert sales.unfiled == 0
    assert "not yet filed  0" in format_status(summary)
