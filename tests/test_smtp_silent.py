"""Filing does not wait for SMTP: while the SMTP server does not answer, mail that needs no
forward (ignored, unrecognized, quarantined, duplicates) is filed all the same."""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select

from mailrouter.commands.demo import deliver_samples
from mailrouter.runtime.daemon import Daemon
from mailrouter.store import FILED, MessageRow, open_database
from mailrouter.testing.samples import demo_samples
from tests.mailcheck import configure, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_smtp() -> Iterator[int]:
    """A port that takes connections and never says a word (a hung or firewalled MTA)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes the handshakes; nobody ever reads or greets
        yield listener.getsockname()[1]


def test_mail_that_needs_no_forward_is_filed_while_smtp_does_not_answer(bed, tmp_path, silent_smtp):
    up = configure(bed, tmp_path)
    config = replace(up, smtp=replace(up.smtp, server=replace(up.smtp.server, port=silent_smtp, timeout=120)))
    samples = [s for s in demo_samples() if "sales@example.com" in s.to]
    routed = [s for s in samples if s.outcome == "routed"]
    assert routed and len(routed) < len(samples)
    deliver_samples(bed, samples)
    sessions = open_database(config.database)

    def outcomes() -> dict[str, set[str]]:
        with sessions() as session:
            rows = session.execute(select(MessageRow.outcome, MessageRow.state)
                                   .where(MessageRow.mailbox == "sales")).all()
        found: dict[str, set[str]] = {}
        for outcome, state in rows:
            found.setdefault(state, set()).add(outcome)
        return found

    daemon = Daemon(config)
    daemon.start()
    started = time.monotonic()
    try:
        # every copy that needs no forward is filed well inside one SMTP timeout (120 s)
        wait_for(lambda: outcomes().get("decided") == {"routed"} and FILED in outcomes(),
                 "the non-routed copies filed", 60)
        assert time.monotonic() - started < 60
        left = bed.fetch_all("sales@example.com")
    finally:
        daemon.stop()
    with sessions() as session:
        waiting = session.scalars(select(MessageRow).where(MessageRow.mailbox == "sales",
                                                           MessageRow.state == "decided")).all()
    assert {row.outcome for row in waiting} == {"routed"}, outcomes()  # forwards wait for SMTP ...
    assert len(left) == len(waiting)  # ... and so do their copies, in INBOX
    assert "routed" not in outcomes()[FILED]
