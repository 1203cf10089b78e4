"""The core scenarios against a second real IMAP server: Cyrus IMAP, with the Courier-style
`INBOX.` namespace and `.` separator (mailrouter/testing/cyrus.py). Every mailbox — shared,
reps', buyer's — lives on Cyrus; mail arrives over Cyrus's LMTP, forwards through the bed's SMTP."""
from __future__ import annotations

import shutil
import signal
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mailrouter.commands.demo import (
    deliver_samples,
    rep_reply_sources,
    write_testbed_config,
)
from mailrouter.config.load import load_config
from mailrouter.runtime.daemon import Daemon
from mailrouter.store import FILED, AssignmentRow, MessageRow, open_database
from mailrouter.testing.cyrus import INSTALL_HINT, CyrusBed, cyrus_installed
from mailrouter.testing.samples import ENGLISH, FRENCH, Sample, compose, demo_samples
from tests.conftest import ADDRESSES
from tests.factories import ROOT
from tests.mailcheck import (
    MovableClock,
    backlog_in_progress,
    configure,
    count_rows,
    folder_of,
    forwards_by_original,
    parsed,
    restart_and_finish,
    route_all,
    run_until,
    shared_copies,
    wait_for,
)

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not cyrus_installed(), reason=f"Cyrus IMAP not found ({INSTALL_HINT})")]

SALES = "sales@example.com"
BUYER = "marie@lumiere-lyon.fr"


@pytest.fixture
def cyrus(tmp_path: Path) -> Iterator[CyrusBed]:
    """A fresh Cyrus bed in a 0755 dir of the system temp dir (the cyrus user must enter it);
    its master log is kept in tmp_path for post-mortems."""
    root = Path(tempfile.mkdtemp(prefix="mailrouter-cyrus-"))
    root.chmod(0o755)
    bed = CyrusBed(root / "bed", [*ADDRESSES, BUYER])
    try:
        bed.start()
        yield bed
    finally:
        bed.stop()
        if (root / "bed" / "master.log").exists():
            shutil.copy(root / "bed" / "master.log", tmp_path / "cyrus-master.log")
        shutil.rmtree(root, ignore_errors=True)


def test_mailboxes_created_at_the_same_moment_stay_apart(cyrus):
    """Folders made at once over separate connections (as the daemon's mailbox loops do) are
    separate mailboxes: Debian's Cyrus gave them one id and one spool without the bed's seed fix."""
    def create(user: str) -> None:
        client = cyrus.imap(user)
        try:
            client.create_folder("INBOX.Together")
        finally:
            client.logout()

    for _round in range(2):  # fresh server processes each round, started within one second
        with ThreadPoolExecutor(len(ADDRESSES)) as pool:
            list(pool.map(create, ADDRESSES))
        cyrus.append(SALES, [(b"Subject: only for sales\r\n\r\nx\r\n", [], datetime.now())], "INBOX.Together")
        cyrus.deliver(SALES, b"Subject: sales inbox\r\nMessage-ID: <together@x>\r\n\r\nx\r\n")
        held = {user: (len(cyrus.fetch_all(user)), len(cyrus.fetch_all(user, "INBOX.Together")))
                for user in ADDRESSES}
        assert held == {user: (1, 1) if user == SALES else (0, 0) for user in ADDRESSES}
        for user in ADDRESSES:
            client = cyrus.imap(user)
            try:
                client.delete_folder("INBOX.Together")
                client.select_folder("INBOX")
                client.delete_messages(client.search(["ALL"]))
                client.expunge()
            finally:
                client.logout()


def test_every_inquiry_is_forwarded_once_and_every_copy_filed_under_inbox(cyrus, tmp_path):
    config = configure(cyrus, tmp_path)
    # Cyrus's LMTP refuses a message with NUL bytes (554 5.6.0), as an MTA in front of it would:
    # the one binary sample never reaches this server's mailboxes.
    samples = [s for s in demo_samples() if b"\0" not in s.raw]
    assert len(samples) == len(demo_samples()) - 1
    route_all(cyrus, config, samples)

    forwards = forwards_by_original(cyrus, config)
    routed = [s for s in samples if s.outcome == "routed"]
    assert set(forwards) == {str(parsed(s.raw)["Message-ID"]) for s in routed}
    for sample in routed:
        (rep, _fwd), = forwards[str(parsed(sample.raw)["Message-ID"])]
        if not sample.target.startswith("team:"):
            assert rep == sample.target, sample.label

    sales = shared_copies(cyrus, SALES)
    assert sales["INBOX"] == []
    # the folders the router made are INBOX.-prefixed, '.'-separated, Chinese ones in modified UTF-7
    assert {"INBOX.Routed.张伟", "INBOX.Unrecognized", "INBOX.Ignored", "INBOX.Assign.张伟"} <= set(sales)
    expected = {"unrecognized": "INBOX.Unrecognized", "ignored": "INBOX.Ignored"}
    for sample in samples:
        places = folders_holding(sales, sample)
        assert len(places) == 1, f"{sample.label}: {places}"
        if sample.duplicate_in:
            continue
        if sample.outcome == "routed":
            assert places[0].startswith("INBOX.Routed."), (sample.label, places)
        else:
            assert places == [expected[sample.outcome]], sample.label
    german = next(s for s in samples if s.label == "German PCB buyer")
    assert folders_holding(sales, german) == ["INBOX.Routed.张伟"]


def folders_holding(copies: dict[str, list[bytes]], sample: Sample) -> list[str]:
    """By Message-ID, not content_key: Cyrus's lmtpd adds a Date to the bounce sample, which has none."""
    message_id = str(parsed(sample.raw)["Message-ID"])
    return [folder for folder, raws in copies.items() for raw in raws
            if str(parsed(raw)["Message-ID"]) == message_id]


def test_moving_into_assign_routes_and_files_the_copy(cyrus, tmp_path):
    config = configure(cyrus, tmp_path)
    first = Sample("Catalogue request", (SALES,),
                   compose("Sam Lee <sam@global-imports.com>", "Catalogue request", ENGLISH, n=501), "unrecognized")
    route_all(cyrus, config, [first])
    assert folder_of(shared_copies(cyrus, SALES), first) == ["INBOX.Unrecognized"]

    client = cyrus.imap(SALES)  # what a manager's mail client does on drag and drop
    try:
        client.select_folder("INBOX.Unrecognized")
        client.move(client.search(["ALL"]), "INBOX.Assign.张伟")
    finally:
        client.logout()
    run_until(config, lambda: folder_of(shared_copies(cyrus, SALES), first) == ["INBOX.Routed.张伟"],
              "the assigned copy to be filed", timeout=90)
    (rep, _fwd), = forwards_by_original(cyrus, config)[str(parsed(first.raw)["Message-ID"])]
    assert rep == "zhang"
    assert shared_copies(cyrus, SALES)["INBOX.Assign.张伟"] == []


def test_a_reply_in_the_reps_sent_folder_stops_the_clock(cyrus, tmp_path):
    overrides = {"sla": {"sweep_interval": 0.1},
                 "reply_source": rep_reply_sources(ROOT / "config.toml", cyrus, tmp_path / "password")}
    config = load_config(write_testbed_config(ROOT / "config.toml", cyrus, tmp_path, overrides))
    tuesday_10 = datetime(2026, 11, 17, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
    inquiry = Sample("French buyer", (SALES,),
                     compose(f"Marie Dubois <{BUYER}>", "Demande de prix LED", FRENCH, n=401), "routed")
    deliver_samples(cyrus, [inquiry])
    daemon = Daemon(config, MovableClock(tuesday_10))
    daemon.start()
    try:
        first = wait_for(lambda: assignments(config), "the assignment", timeout=60)[0]
        rep = config.reps[first.rep]
        wait_for(lambda: cyrus.fetch_all(rep.email), "the forward", timeout=60)
        reply = (f"From: {rep.email}\r\nTo: {BUYER}\r\nSubject: Re: Demande de prix LED\r\n"
                 f"Date: Tue, 17 Nov 2026 10:03:00 +0800\r\nMessage-ID: <reply.1@example.com>\r\n"
                 f"In-Reply-To: {first.forward_message_id}\r\n\r\nBonjour Marie.\r\n").encode()
        client = cyrus.imap(rep.email)  # the rep's client keeps its copy in Sent: INBOX.Sent here
        try:
            client.append("INBOX.Sent", reply, flags=[b"\\Seen"])
        finally:
            client.logout()
        answered = wait_for(lambda: [a for a in assignments(config) if a.first_reply_at], "the reply",
                            timeout=60)[0]
    finally:
        daemon.stop()
    assert answered.reply_seconds == 180 and answered.replied_by == rep.id


def assignments(config) -> list[AssignmentRow]:
    with open_database(config.database)() as session:
        return list(session.scalars(select(AssignmentRow).order_by(AssignmentRow.id)))


def test_sigkill_in_the_middle_of_a_backlog_loses_nothing(cyrus, tmp_path):
    config, config_path, log, first, samples = backlog_in_progress(cyrus, tmp_path, 200)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert count_rows(config, MessageRow.state == FILED) < len(samples), "finished before the kill"

    restart_and_finish(config, config_path, log, len(samples), timeout=120)

    counts = Counter({mid: len(v) for mid, v in forwards_by_original(cyrus, config).items()})
    for sample in samples:
        assert counts[str(parsed(sample.raw)["Message-ID"])] >= 1, sample.label
    # only inside the documented window: one forward per SMTP session (docs/ARCHITECTURE.md)
    assert sum(n - 1 for n in counts.values()) <= config.smtp.connections, counts.most_common(3)
    copies = shared_copies(cyrus, SALES)
    assert copies["INBOX"] == []
    assert sum(len(raws) for raws in copies.values()) == len(samples)
