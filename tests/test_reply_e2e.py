"""What a buyer gets back when a rep hits Reply on a forward (issue 15 item 1, done-when (a)).

On the test bed: an inquiry and a re-inquiry from the same buyer are routed; the rep's client
(Outlook, Thunderbird, Foxmail, as mailrouter.testing.replies builds them) answers each forward
through the bed's SMTP server; the buyer's mailbox is read back. Neither the subject nor the
quoted header block may carry an internal label: 再次询盘, the country, the product, the rule.
"""
from __future__ import annotations

import email
import email.policy
import re
import smtplib
from pathlib import Path

import pytest

from mailrouter.testing.replies import CLIENTS, build_reply
from mailrouter.testing.samples import GERMAN, SALES, Sample, compose
from mailrouter.testing.testbed import TestBed
from tests.mailcheck import configure, forwards_by_original, parsed, route_all, server_folder

pytestmark = pytest.mark.integration

BUYER = "k.becker@becker-elektronik.de"
FIRST = "Anfrage Leiterplatten 5000 Stück"
SECOND = "Neue Anfrage: 2000 Stück Leiterplatten"
# What the router knows and the buyer must not see: re-inquiry, country, product, rule.
INTERNAL = re.compile(r"再次询盘|re-inquiry|\bDE\b|\bPCB\b|german-pcb|\[\]")


def _inquiries() -> tuple[Sample, Sample]:
    first = compose(f"Klaus Becker <{BUYER}>", FIRST, GERMAN, n=41)
    second = compose(f"Klaus Becker <{BUYER}>", SECOND, GERMAN.replace("5000", "2000"), n=42)
    return (Sample("first", (SALES,), first, "routed", "zhang"),
            Sample("returning", (SALES,), second, "routed", "zhang"))


def _send(bed: TestBed, message: email.message.EmailMessage) -> None:
    with smtplib.SMTP(bed.host, bed.smtp_port, timeout=30) as smtp:
        smtp.send_message(message)


def _replies_received(bed: TestBed, tmp_path: Path, overrides: dict) -> list[tuple[str, str, email.message.EmailMessage]]:
    """Route both inquiries, answer each forward as every client would: (client, the buyer's
    subject, the reply as the buyer's mailbox holds it)."""
    config = configure(bed, tmp_path, overrides)
    first, second = _inquiries()
    route_all(bed, config, [first])
    route_all(bed, config, [second])  # the registry now knows the buyer: a re-inquiry
    forwards = forwards_by_original(bed, config)
    sent = {}
    for sample, buyer_subject in ((first, FIRST), (second, SECOND)):
        (rep, forward), = forwards[str(parsed(sample.raw)["Message-ID"])]
        # the labels exist, for the rep: what must not travel back with a reply
        expected = "[DE][PCB]" if sample is first else "[再次询盘][DE][PCB]"
        assert str(forward["X-Mailrouter-Labels"]) == expected
        for client in CLIENTS:
            answer = f"{client} {sample.label}: thank you"
            reply = build_reply(client, forward, config.reps[rep].email, answer)
            assert reply["To"].addresses[0].addr_spec == BUYER  # Reply-To still reaches the buyer
            _send(bed, reply)
            sent[answer] = (client, buyer_subject)
    _assert_shared_copy_keywords(bed, config.keyword_prefix)
    received = {_text(m).split("\n", 1)[0]: m for m in map(parsed, bed.fetch_all(BUYER))}
    assert set(received) == set(sent)
    return [(*sent[answer], message) for answer, message in received.items()]


def _assert_shared_copy_keywords(bed: TestBed, prefix: str) -> None:
    """The re-inquiry label, gone from the subject, marks the shared copy (IMAP keyword)."""
    client = bed.imap(SALES)
    try:
        client.select_folder(server_folder(bed, SALES, "Routed/张伟"), readonly=True)
        flags = client.get_flags(client.search(["ALL"]))
        found = {uid: {f.decode() for f in fl if f.decode().startswith(prefix)} for uid, fl in flags.items()}
    finally:
        client.logout()
    assert sorted(map(sorted, found.values())) == [[f"{prefix}reinquiry", f"{prefix}routed", f"{prefix}zhang"],
                                                   [f"{prefix}routed", f"{prefix}zhang"]], found


def _text(message: email.message.EmailMessage) -> str:
    return "\n".join(message.get_body(("plain",)).get_content().splitlines())


def _quote_block(client: str, body: str) -> str:
    """The quoted header block of a received reply (the lines after the answer)."""
    return body.split("\n\n", 2)[1]


@pytest.mark.parametrize("overrides, expected", [
    ({}, "{subject}"),
    ({"forward": {"customer_tag": "[Acme Electronics]", "customer_tag_placement": "right"}},
     "{subject} [Acme Electronics]"),
])
def test_reply_to_a_forward_carries_no_internal_label(make_bed, tmp_path: Path, overrides: dict,
                                                      expected: str) -> None:
    bed = make_bed((BUYER,))
    prefixes = {"outlook": "RE: ", "thunderbird": "Re: ", "foxmail": "回复："}
    replies = _replies_received(bed, tmp_path, overrides)
    assert len(replies) == 6
    for client, buyer_subject, reply in replies:
        subject = str(reply["Subject"])
        assert subject == prefixes[client] + expected.format(subject=buyer_subject), (client, subject)
        assert not INTERNAL.search(subject), (client, subject)
        block = _quote_block(client, _text(reply))
        assert "Klaus Becker" in block or client != "thunderbird", block  # the block is the one read
        assert not INTERNAL.search(block), (client, block)
        assert reply["In-Reply-To"].startswith("<mr.")  # threads on the forward it answers
