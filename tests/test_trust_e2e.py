"""Trust on the test bed (issue 14 items 7 and 5): forged router markers and rep addresses reach
the manager, Reply-To abuse neither redirects a known customer's replies nor stops the clock,
own domains stay out of the registry, and forwards reach servers without 8BITMIME or with a
strict line limit. Every message goes through the real daemon, Dovecot and SMTP."""
from __future__ import annotations

import base64
import email
import email.policy
import re
import smtplib
from dataclasses import replace
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mailrouter.commands.demo import deliver_samples, rep_reply_sources, write_testbed_config
from mailrouter.config.load import Config, load_config
from mailrouter.registry.models import CustomerEmailRow
from mailrouter.store import AssignmentRow, MessageRow, OutboxRow, open_database, utcnow
from mailrouter.testing.samples import GERMAN, Sample, compose, german
from mailrouter.testing.testbed import TestBed
from tests.factories import ROOT
from tests.mailcheck import configure, parsed, route_all, run_until, wait_for

pytestmark = pytest.mark.integration

VICTIM, ATTACKER = "victor@bigcorp.de", "evil@attacker.test"


def inquiry(n: int, sender: str = "Klaus Becker <k.becker@becker-elektronik.de>",
            subject: str = "Anfrage Leiterplatten", **headers: str) -> Sample:
    """A German PCB inquiry: the rules give it to zhang."""
    raw = compose(sender, subject, german("Klaus Becker", "Becker Elektronik GmbH",
                                                          "+49 89 1234567"), n=n, headers=headers or None)
    return Sample(f"inquiry {n}", ("sales@example.com",), raw, "routed", "zhang")


def messages(config: Config) -> list[MessageRow]:
    with open_database(config.database)() as session:
        return list(session.scalars(select(MessageRow).order_by(MessageRow.id)))


def by_message_id(config: Config, message_id: str) -> MessageRow:
    return next(m for m in messages(config) if m.message_id == message_id)


def message_id(sample: Sample) -> str:
    return str(parsed(sample.raw)["Message-ID"])


def zhang_forwards(bed: TestBed) -> list[bytes]:
    return bed.fetch_all("zhang@example.com")


def routing_block(forward: bytes) -> str:
    return parsed(forward).get_body(("plain",)).get_content()


# -- item 7: the router's marker

def test_a_forged_marker_reaches_the_manager_and_the_routers_own_forward_is_ignored(bed, tmp_path):
    """security D15 / hostile 034: any `X-Mailrouter:` header made mail vanish into Ignored."""
    config = configure(bed, tmp_path)
    first = inquiry(1)
    route_all(bed, config, [first])
    (forward,) = zhang_forwards(bed)
    forged = inquiry(2, **{"X-Mailrouter": "forward; rule=x; rep=zhang", "Auto-Submitted": "no"})
    # a rep sends our forward back to sales@ (it carries the genuine, signed marker)
    back = Sample("our forward, back", ("sales@example.com",), forward, "ignored")
    route_all(bed, config, [forged, back])

    row = by_message_id(config, message_id(forged))
    assert (row.outcome, row.folder) == ("unrecognized", config.folders.unrecognized)
    assert "carries the X-Mailrouter marker, but it carries no signature" in row.reason
    returned = by_message_id(config, str(parsed(forward)["Message-ID"]))
    assert (returned.outcome, returned.reason) == ("ignored", "sent by mailrouter itself")
    assert len(zhang_forwards(bed)) == 1  # neither was forwarded


def test_the_marker_key_is_kept_across_restarts_0600(bed, tmp_path):
    config = configure(bed, tmp_path)
    route_all(bed, config, [inquiry(3)])
    key_file = Path(config.database[len("sqlite:///"):]).parent / "router.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_bytes()
    (forward,) = zhang_forwards(bed)
    # a restart (a new Daemon, a new Config) still knows the forward it sent before
    again = load_config(config.path)
    route_all(bed, again, [Sample("back", ("sales@example.com",), forward, "ignored")])
    assert by_message_id(again, str(parsed(forward)["Message-ID"])).outcome == "ignored"
    assert key_file.read_bytes() == key


# -- item 7: mail From a rep's address

def test_a_rep_address_from_outside_is_shown_to_the_manager(bed, tmp_path):
    """security D15: `From: Zhang Wei <zhang@example.com>` from outside was silently Ignored."""
    config = configure(bed, tmp_path)
    forged = Sample("forged rep", ("sales@example.com",),
                    compose("Zhang Wei <zhang@example.com>", "Please update our bank details", GERMAN, n=4),
                    "unrecognized")
    vouched = Sample("rep via our server", ("sales@example.com",),
                     compose("Zhang Wei <zhang@example.com>", "FYI", GERMAN, n=5, headers={
                         "Authentication-Results": "mx.example.com; auth=pass smtp.auth=zhang@example.com"}),
                     "ignored")
    route_all(bed, config, [forged, vouched])
    row = by_message_id(config, message_id(forged))
    assert (row.outcome, row.folder) == ("unrecognized", config.folders.unrecognized)
    assert "not authenticated by our mail server" in row.reason
    assert by_message_id(config, message_id(vouched)).outcome == "ignored"


# -- item 7: Reply-To

def test_an_own_reply_to_is_never_used_and_the_name_belongs_to_the_address(bed, tmp_path):
    """security D2: `Reply-To: sales@` was used, and the From's name paired with any Reply-To."""
    config = configure(bed, tmp_path)
    own = inquiry(6, **{"Reply-To": "SALES@Example.COM"})
    other = Sample("other", ("sales@example.com",), compose(
        "Buyer Ten <buyer10@schmidt-platinen.de>", "Anfrage Leiterplatten",
        german("Hans Schmidt", "Schmidt Platinen GmbH", "+49 30 5551234"), n=7,
        headers={"Reply-To": "purchasing@schmidt-group.de"}), "routed")
    route_all(bed, config, [own, other])
    forwards = {str(parsed(f)["In-Reply-To"]): parsed(f) for f in zhang_forwards(bed)}
    to_own = forwards[message_id(own)]
    assert to_own["Reply-To"].addresses[0].addr_spec == "k.becker@becker-elektronik.de"
    assert to_own["Reply-To"].addresses[0].display_name == "Klaus Becker"
    assert "our own address sales@example.com: not used" in to_own.get_body(("plain",)).get_content()
    to_other = forwards[message_id(other)]
    assert str(to_other["Reply-To"]) == "purchasing@schmidt-group.de"  # not "Buyer Ten <purchasing@…>"


@pytest.fixture
def people_bed(make_bed) -> TestBed:
    """Buyer and attacker have mailboxes on the bed, so a rep's replies can really be sent."""
    return make_bed(extra_addresses=(VICTIM, ATTACKER))


def reply(bed: TestBed, to: str, forward_id: str, n: int) -> None:
    """What zhang's mail client does: send over SMTP and keep a copy in Sent."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "zhang@example.com", to, "Re: Neue Bankverbindung"
    msg["Date"], msg["Message-ID"] = format_datetime(utcnow()), f"<reply.{n}@example.com>"
    msg["In-Reply-To"] = msg["References"] = forward_id
    msg.set_content("Sehr geehrter Herr Victim, ...")
    with smtplib.SMTP(bed.host, bed.smtp_port) as smtp:
        smtp.send_message(msg)
    client = bed.imap("zhang@example.com")
    try:
        client.append("Sent", msg.as_bytes(), flags=[b"\\Seen"])
    finally:
        client.logout()


def assignment(config: Config, message: MessageRow) -> AssignmentRow:
    with open_database(config.database)() as session:
        return session.scalars(select(AssignmentRow).where(AssignmentRow.message == message.id)).one()


def test_a_known_customers_redirected_reply_to_is_flagged_and_a_reply_there_stops_no_clock(people_bed, tmp_path):
    """security D2: a forged "new bank details" mail From a registry customer with
    `Reply-To: evil@attacker.test` reached the owner as `Reply-To: Victor Victim <evil@…>`, and
    the rep's reply to the attacker stopped the first-reply clock."""
    bed = people_bed
    overrides = {"reply_source": rep_reply_sources(ROOT / "config.toml", bed, tmp_path / "password"),
                 "sla": {"sweep_interval": 0.1}}
    config = load_config(write_testbed_config(ROOT / "config.toml", bed, tmp_path, overrides))
    route_all(bed, config, [inquiry(8, sender=f"Victor Victim <{VICTIM}>")])  # now a registry customer
    forged = inquiry(9, sender=f"Victor Victim <{VICTIM}>",
                     subject="Neue Bankverbindung", **{"Reply-To": f"Victor Victim <{ATTACKER}>"})
    route_all(bed, config, [forged])

    row = by_message_id(config, message_id(forged))
    fwd = next(parsed(f) for f in zhang_forwards(bed) if str(parsed(f)["In-Reply-To"]) == message_id(forged))
    assert fwd["Reply-To"].addresses[0].addr_spec == VICTIM  # a Reply reaches the real customer
    block = fwd.get_body(("plain",)).get_content()
    assert f"asks for replies to {ATTACKER}, not to the known customer's address {VICTIM}" in block
    assert assignment(config, row).suspect_reply_to == ATTACKER

    reply(bed, ATTACKER, row.forward_message_id, 1)  # the rep writes to the attacker anyway
    run_until(config, lambda: len(bed.fetch_all(ATTACKER)) == 1 and _read_sent(config), "the reply read", 60)
    assert assignment(config, row).first_reply_at is None  # the buyer got nothing: the clock runs on
    reply(bed, VICTIM, row.forward_message_id, 2)
    run_until(config, lambda: assignment(config, row).first_reply_at is not None, "the reply to the customer", 60)
    assert assignment(config, row).reply_message_id == "<reply.2@example.com>"


def _read_sent(config: Config) -> bool:
    """The reply watcher has read zhang's Sent folder past both messages in it."""
    from mailrouter.store import SentCursorRow

    with open_database(config.database)() as session:
        return any(c.last_uid >= 1 for c in session.scalars(select(SentCursorRow)))


# -- item 7: own domains never become customers

def test_own_addresses_and_domains_never_become_customers(bed, tmp_path):
    """security D3: a form naming li@example.com, or a colleague's mail a rule routed, made the
    company's own domain a registry customer: colleagues' mail then went out as re-inquiries."""
    config = configure(bed, tmp_path)
    pcb = "Country: Germany\n\n" + GERMAN  # the German PCB rule gives it to zhang
    form = Sample("form naming a rep", ("sales@example.com",), compose(
        "Website <noreply@example.com>", "New contact form submission",
        f"Name: Li\nCountry: Germany\nEmail: li@example.com\n\nMessage:\n{GERMAN}", n=10), "unrecognized")
    colleague = Sample("colleague", ("sales@example.com",), compose(
        "Accounting <accounting@example.com>", "Anfrage Leiterplatten", pcb, n=11), "routed")
    route_all(bed, config, [form, colleague])
    assert "cannot forward" in by_message_id(config, message_id(form)).reason  # our own address: no Reply-To
    assert by_message_id(config, message_id(colleague)).outcome == "routed"
    with open_database(config.database)() as session:
        assert list(session.scalars(select(CustomerEmailRow.email))) == []


# -- item 5: servers without 8BITMIME, and the 998-octet line limit

EIGHT_BIT = ("From: Klaus Becker <k.becker@becker-elektronik.de>\r\nTo: sales@example.com\r\n"
             "Subject: Anfrage Leiterplatten\r\nMessage-ID: <8bit.{n}@becker-elektronik.de>\r\n"
             "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\n" + GERMAN.replace("\n", "\r\n") + "\r\n")


def deliver_and_route(bed: TestBed, config: Config, raw: bytes) -> MessageRow:
    """Deliver one message from the buyer's server and run the daemon until it is filed."""
    bed.deliver("sales@example.com", raw, mail_from="k.becker@becker-elektronik.de")
    run_until(config, lambda: [m for m in messages(config) if m.filed_at], "the message filed", 90)
    (row,) = messages(config)
    return row


def original_part(forward: bytes) -> tuple[str, bytes]:
    """The message/rfc822 part's Content-Transfer-Encoding and bytes as they sit in the forward."""
    boundary = parsed(forward).get_boundary().encode()
    headers, _, body = forward.split(b"\r\n--" + boundary)[-2].partition(b"\r\n\r\n")
    assert b"Content-Type: message/rfc822" in headers
    return re.search(rb"Content-Transfer-Encoding: (\S+)", headers).group(1).decode(), body


def decoded(forward: bytes, name: str) -> str:
    raw = email.message_from_bytes(forward, policy=email.policy.compat32)[name]
    return str(make_header(decode_header(raw)))


@pytest.mark.parametrize("threshold", [None, 1], ids=["in-memory", "spooled"])
def test_an_8bit_original_reaches_a_server_without_8bitmime_byte_for_byte(make_bed, tmp_path, threshold):
    """issue 14 item 5: the forward was sent 8-bit as it was, and refused ("strict ASCII mode")."""
    bed = make_bed(smtp_8bitmime=False)
    config = configure(bed, tmp_path, **({"large_message_bytes": threshold} if threshold else {}))
    row = deliver_and_route(bed, config, EIGHT_BIT.format(n=threshold).encode())
    assert (row.outcome, row.state) == ("routed", "filed"), row.reason
    (forward,) = zhang_forwards(bed)
    cte, body = original_part(forward)
    shared = bed.fetch_all("sales@example.com", _folder(bed, row.folder))[0]
    assert forward.isascii() and cte == "base64" and base64.b64decode(body) == shared
    assert not shared.isascii()


def test_an_8bit_original_goes_8bit_where_8bitmime_is_offered(bed, tmp_path):
    config = configure(bed, tmp_path)
    row = deliver_and_route(bed, config, EIGHT_BIT.format(n=0).encode())
    (forward,) = zhang_forwards(bed)
    cte, body = original_part(forward)
    assert cte == "8bit" and body == bed.fetch_all("sales@example.com", _folder(bed, row.folder))[0]
    assert bed.smtp_mail_options[-1][-1] == "BODY=8BITMIME"


def test_long_subjects_and_display_names_stay_within_998_octets(make_bed, tmp_path):
    """issue 14 item 5: a 1,500-character display name made a 1,504-octet To: line, refused."""
    bed = make_bed(smtp_strict_lines=True)  # refuses any line over 998 octets
    config = configure(bed, tmp_path, {"reps": {"zhang": {"name": "Z" * 1500}}})
    sales, *others = config.mailboxes
    config = replace(config, mailboxes=(replace(sales, display_name="S" * 1200), *others))
    name, reply_name = "Klaus" + "K" * 1995, "R" * 1500 + " " + "r" * 900
    raw = (f'From: "{name}" <k.becker@becker-elektronik.de>\r\nTo: sales@example.com\r\n'
           f"Subject: Anfrage Leiterplatten {'L' * 2000}\r\nMessage-ID: <long.1@becker-elektronik.de>\r\n"
           f'Reply-To: "{reply_name}" <purchasing@becker-group.de>\r\n\r\n'
           + GERMAN.replace("\n", "\r\n") + "\r\n").encode()
    row = deliver_and_route(bed, config, raw)
    assert (row.outcome, row.state) == ("routed", "filed"), row.reason
    (forward,) = zhang_forwards(bed)
    head = forward.split(b"\r\n\r\n")[0]
    assert max(map(len, forward.split(b"\r\n"))) <= 998
    # as RFC 2047 decoders read it (the stdlib's address parser keeps the folding space)
    assert decoded(forward, "To") == f"{'Z' * 1500} <zhang@example.com>"
    assert decoded(forward, "From").endswith(f" via {'S' * 1200} <sales@example.com>")  # "Buyer via Sales"
    assert b"LLLLLLLL" in head  # the long subject is there, cut to the subject's length


def _folder(bed: TestBed, logical: str) -> str:
    from tests.mailcheck import server_folder

    return server_folder(bed, "sales@example.com", logical)
