"""The manager's desk on the test bed: assigning by moving mail, as from any mail client."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from mailrouter.testing.samples import ENGLISH, Sample, compose
from mailrouter.store import MessageRow, OutboxRow, open_database
from tests.mailcheck import (MovableClock, configure, folder_of, forwards_by_original, parsed, route_all,
                             run_until, shared_copies, wait_for)

pytestmark = pytest.mark.integration


def unrecognized(sender: str, subject: str, n: int) -> Sample:
    return Sample(subject, ("sales@example.com",), compose(sender, subject, ENGLISH, n=n), "unrecognized")


def move(bed, user: str, source: str, target: str) -> None:
    """What a manager's mail client does on drag and drop."""
    client = bed.imap(user)
    try:
        client.select_folder(source)
        client.move(client.search(["ALL"]), target)
    finally:
        client.logout()


@pytest.mark.parametrize("threshold", [None, 1], ids=["in-memory", "spooled"])
def test_moving_into_assign_routes_files_and_teaches_the_registry(bed, tmp_path, threshold):
    # spooled: every message counts as big, in INBOX and in the Assign/ folders
    config = configure(bed, tmp_path, **({"large_message_bytes": threshold} if threshold else {}))
    first = unrecognized("Sam Lee <sam@global-imports.com>", "Catalogue request", 501)
    route_all(bed, config, [first])
    copies = shared_copies(bed, "sales@example.com")
    assert folder_of(copies, first) == ["Unrecognized"]
    assert "Assign/张伟" in bed.folders("sales@example.com")

    move(bed, "sales@example.com", "Unrecognized", "Assign/张伟")
    run_until(config, lambda: folder_of(shared_copies(bed, "sales@example.com"), first) == ["Routed/张伟"],
              "the assigned copy to be filed")
    (rep, fwd), = forwards_by_original(bed, config)[str(parsed(first.raw)["Message-ID"])]
    said = {"en": "moved into Assign/张伟 by a manager", "zh": "主管移入 Assign/张伟"}[config.reps["zhang"].language]
    assert rep == "zhang" and said in fwd.get_body(("plain",)).get_content()  # in the rep's language
    copies = shared_copies(bed, "sales@example.com")
    assert folder_of(copies, first) == ["Routed/张伟"]
    assert copies["Assign/张伟"] == []
    if threshold:
        with open_database(config.database)() as session:
            assert all(session.scalars(select(OutboxRow.spool_path)).all())  # streamed from a spool file
        assert [p.name for p in config.spool_dir.iterdir()] == []

    # the next mail from the same company needs no manager: the registry learned the domain
    again = unrecognized("Amy Chan <amy@global-imports.com>", "Price list", 502)
    route_all(bed, config, [again])
    (rep, fwd), = forwards_by_original(bed, config)[str(parsed(again.raw)["Message-ID"])]
    assert rep == "zhang" and str(fwd["X-Mailrouter-Labels"]).startswith("[再次询盘]")


def test_not_an_inquiry_folder_files_as_ignored(bed, tmp_path):
    config = configure(bed, tmp_path)
    spam = unrecognized("Promo <deals@cheap-seo.com>", "Boost your ranking", 511)
    route_all(bed, config, [spam])
    move(bed, "sales@example.com", "Unrecognized", "Assign/Not an inquiry")
    run_until(config, lambda: folder_of(shared_copies(bed, "sales@example.com"), spam) == ["Ignored"],
              "the copy to be filed as ignored")
    assert folder_of(shared_copies(bed, "sales@example.com"), spam) == ["Ignored"]
    assert forwards_by_original(bed, config) == {}


def test_digest_reaches_each_supervisor_with_only_their_teams(bed, tmp_path):
    from datetime import datetime, timedelta, timezone

    from mailrouter.testing.samples import demo_samples

    config = configure(bed, tmp_path, overrides={"teams": {"americas": {"supervisor": "zhang"}}})
    tuesday_10 = datetime(2026, 11, 17, 2, 0, tzinfo=timezone.utc)  # 10:00 in Asia/Shanghai
    clock = MovableClock(tuesday_10)
    samples = [s for s in demo_samples() if s.target in ("team:europe", "team:americas")]
    route_all(bed, config, samples, clock)

    clock.now = tuesday_10 + timedelta(hours=22, minutes=31)  # Wednesday 08:31: the daily digest
    from mailrouter.runtime.daemon import Daemon

    daemon = Daemon(config, clock)
    assert daemon.send_digests() == 2  # wang (europe) and zhang (americas)
    assert daemon.send_digests() == 0  # never twice for one period
    daemon.start()
    try:
        wait_for(lambda: digests(bed, "wang@example.com") and digests(bed, "zhang@example.com"), "the digests")
    finally:
        daemon.stop()
    (digest_wang,), (digest_zhang,) = digests(bed, "wang@example.com"), digests(bed, "zhang@example.com")
    assert "europe" in digest_wang and "americas" not in digest_wang
    assert "americas" in digest_zhang and "europe" not in digest_zhang


def digests(bed, user: str) -> list[str]:
    return [parsed(raw).get_body(("plain",)).get_content() for raw in bed.fetch_all(user)
            if str(parsed(raw)["X-Mailrouter"]).startswith("digest")]


def test_not_an_inquiry_can_block_the_sender(bed, tmp_path):
    config = configure(bed, tmp_path, overrides={"registry": {"block_not_inquiry": True}})
    spam = unrecognized("Promo <deals@cheap-seo.com>", "Boost your ranking", 521)
    route_all(bed, config, [spam])
    move(bed, "sales@example.com", "Unrecognized", "Assign/Not an inquiry")
    run_until(config, lambda: folder_of(shared_copies(bed, "sales@example.com"), spam) == ["Ignored"],
              "the copy to be filed as ignored")
    # from now on their mail is ignored without the manager, even with a product in it
    again = Sample("again", ("sales@example.com",),
                   compose("Promo <deals@cheap-seo.com>", "LED panels cheap!!!", "Buy LED panels now.", n=522),
                   "ignored")
    route_all(bed, config, [again])
    assert folder_of(shared_copies(bed, "sales@example.com"), again) == ["Ignored"]
    from sqlalchemy import select

    from mailrouter.store import MessageRow, open_database
    with open_database(config.database)() as session:
        reason = session.scalars(select(MessageRow.reason).where(MessageRow.subject == "LED panels cheap!!!")).one()
    assert reason.startswith("sender blocked: filed as not an inquiry")


def test_a_message_whose_manual_assignment_fails_twice_goes_to_quarantine_and_the_desk_goes_on(bed, tmp_path):
    """Issue 14 item 1: one message in an Assign/ folder that cannot be recorded (here the real
    database refuses its assignment) used to fail the Assign/ check every round for good."""
    from sqlalchemy import text

    config = configure(bed, tmp_path)
    stuck = unrecognized("Sam Lee <sam@global-imports.com>", "Catalogue request", 521)
    other = unrecognized("Bo Li <bo@pacific-goods.com>", "Samples", 522)
    route_all(bed, config, [stuck])
    with open_database(config.database).begin() as session:
        session.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON assignments "
                             "WHEN NEW.customer = 'sam@global-imports.com' "
                             "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"))
    move(bed, "sales@example.com", "Unrecognized", "Assign/张伟")
    run_until(config, lambda: folder_of(shared_copies(bed, "sales@example.com"), stuck) == ["Quarantine"],
              "the copy that cannot be assigned to be quarantined")
    with open_database(config.database)() as session:
        reasons = session.scalars(select(MessageRow.reason).where(MessageRow.outcome == "quarantined")).all()
    assert reasons == ["failed twice the same way: IntegrityError: refused by the test trigger"]
    # the desk still works: the next message moved into Assign/ is routed
    route_all(bed, config, [other])
    move(bed, "sales@example.com", "Unrecognized", "Assign/张伟")
    run_until(config, lambda: folder_of(shared_copies(bed, "sales@example.com"), other) == ["Routed/张伟"],
              "the next assigned copy to be filed")
