"""The whole pipeline against real servers: mail in over LMTP, forwards read back over IMAP."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mailrouter.intake.fingerprint import content_key
from mailrouter.testing.samples import demo_samples
from mailrouter.testing.testbed import TestBed
from tests.mailcheck import (attached_original, configure, folder_of, forwards_by_original, parsed,
                             route_all, server_folder, shared_copies)

pytestmark = pytest.mark.integration

@pytest.fixture(params=["in-memory", "spooled"])
def routed(request, bed: TestBed, tmp_path: Path):
    """Every sample through the usual path, and again with every message over the large-message
    threshold (spooled, decided from its reduced copy, streamed to SMTP): same results."""
    config = configure(bed, tmp_path, **({"large_message_bytes": 1} if request.param == "spooled" else {}))
    samples = demo_samples()
    route_all(bed, config, samples)
    if request.param == "spooled":
        assert not any(config.spool_dir.iterdir()), "spool files left behind"
    return bed, config, samples


def test_every_inquiry_reaches_exactly_one_right_rep(routed):
    bed, config, samples = routed
    forwards = forwards_by_original(bed, config)
    routed_samples = [s for s in samples if s.outcome == "routed"]
    assert len(routed_samples) >= 20  # the rest are ignored/unrecognized/quarantined on purpose
    for sample in routed_samples:
        message_id = str(parsed(sample.raw)["Message-ID"])
        got = forwards.get(message_id, [])
        assert len(got) == 1, f"{sample.label}: {len(got)} forwards"
        rep, fwd = got[0]
        if sample.target.startswith("team:"):
            assert rep in config.teams[sample.target[5:]].members, sample.label
        else:
            assert rep == sample.target, sample.label
        buyer = parsed(sample.raw)
        expected = sample.buyer or (buyer["Reply-To"] or buyer["From"]).addresses[0].addr_spec
        assert fwd["Reply-To"].addresses[0].addr_spec.lower() == expected.lower(), sample.label
        assert str(fwd["From"]).endswith("@example.com>")
        subject = str(fwd["Subject"])
        assert subject.endswith(" ".join(str(buyer["Subject"]).split())), subject
        assert "\n" not in subject and "\r" not in subject and "Bcc" not in fwd
        assert fwd["Auto-Submitted"] == "auto-generated"
    german = next(s for s in samples if s.label == "German PCB buyer")
    (_, fwd), = forwards[str(parsed(german.raw)["Message-ID"])]
    assert str(fwd["Subject"]) == "Anfrage Leiterplatten 5000 Stück"  # the buyer's: a reply carries it back
    assert str(fwd["X-Mailrouter-Labels"]) == "[DE][PCB]"  # the rep's labels stay out of it
    # nothing else was forwarded: ignored, unrecognized and quarantined mail stays with the manager
    expected_ids = {str(parsed(s.raw)["Message-ID"]) for s in routed_samples}
    assert set(forwards) == expected_ids


def test_team_round_robin_spreads_the_work(routed):
    bed, config, samples = routed
    forwards = forwards_by_original(bed, config)
    europe = Counter(forwards[str(parsed(s.raw)["Message-ID"])][0][0]
                     for s in samples if s.target == "team:europe")
    assert set(europe) == {"zhang", "li"} and abs(europe["zhang"] - europe["li"]) <= 1


def test_attachment_and_original_bytes_survive(routed):
    bed, config, samples = routed
    sample = next(s for s in samples if "drawing" in s.label)
    (_, fwd), = forwards_by_original(bed, config)[str(parsed(sample.raw)["Message-ID"])]
    original = parsed(attached_original(fwd))
    pdf = next(p for p in original.walk() if p.get_filename() == "Zeichnung-4711.pdf")
    expected = next(p for p in parsed(sample.raw).walk() if p.get_filename() == "Zeichnung-4711.pdf")
    assert pdf.get_content() == expected.get_content()
    assert content_key(attached_original(fwd)) == content_key(sample.raw)


def test_every_copy_is_filed_in_its_folder(routed):
    bed, config, samples = routed
    sales, info = shared_copies(bed, "sales@example.com"), shared_copies(bed, "info@example.com")
    assert sales["INBOX"] == [] and info["INBOX"] == []
    expected_folder = {
        "unrecognized": config.folders.unrecognized, "ignored": config.folders.ignored,
        "quarantined": config.folders.quarantine}
    for sample in samples:
        places = folder_of(sales, sample)
        assert len(places) == 1, f"{sample.label}: {places}"
        if sample.duplicate_in:
            continue
        if sample.outcome == "routed":
            assert places[0].split("/")[0].split(".")[0] == "Routed", (sample.label, places)
        else:
            assert places == [server_folder(bed, "sales@example.com", expected_folder[sample.outcome])]
    # one copy of the inquiry sent to both mailboxes is routed, the other filed as a duplicate
    dup = next(s for s in samples if s.duplicate_in)
    places = sorted(folder_of(info, dup) + folder_of(sales, dup))
    assert len(places) == 2 and places[0] == config.folders.duplicate and places[1].startswith("Routed")


def test_routed_copy_is_read_tagged_and_under_the_rep_folder(routed):
    bed, config, samples = routed
    folder = server_folder(bed, "sales@example.com", "Routed/张伟")
    client = bed.imap("sales@example.com")
    try:
        client.select_folder(folder, readonly=True)
        flags = client.get_flags(client.search(["ALL"]))
    finally:
        client.logout()
    zhang_samples = [s for s in samples if s.target == "zhang" and s.to == ("sales@example.com",)]
    assert len(flags) >= len(zhang_samples)
    for uid_flags in flags.values():
        assert b"\\Seen" in uid_flags and b"mr-routed" in uid_flags and b"mr-zhang" in uid_flags
