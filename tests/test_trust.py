"""Trust only what can be trusted (issue 14 item 7): the signed router marker, mail From our own
addresses, the Reply-To policy and own domains kept out of the registry. Pure functions here;
tests/test_trust_e2e.py drives the same through the daemon on the test bed."""
from __future__ import annotations

import os
import stat
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailrouter.act.outgoing import mark_automatic
from mailrouter.decide.assign import TeamState, decide
from mailrouter.decide.trust import never_a_customer, reply_target
from mailrouter.marker import forgery, signed
from mailrouter.model import ROUTER_HEADER, Outcome
from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS, parse_message
from mailrouter.model import ParseSettings
from mailrouter.runtime.routerkey import load_or_create_key, with_installation_key
from mailrouter.sla.replies import Outgoing, is_reply_to
from tests.factories import example_config, hans_inquiry

KEY = b"k" * 32
OWN = frozenset({"sales@example.com", "info@example.com", "zhang@example.com", "li@example.com"})
OWN_DOMAINS = frozenset({"example.com"})


@pytest.fixture(scope="module")
def config():
    return example_config()


# -- the signed marker

def test_a_marker_verifies_only_for_its_key_and_message_id() -> None:
    value = signed(KEY, "<f1@example.com>", "forward; rule=eu; rep=zhang")
    assert forgery(KEY, "<f1@example.com>", value) is None
    assert forgery(KEY, "<f1@example.com>", value.replace("\n", "\r\n ")) is None  # folded and unfolded
    assert "does not verify" in forgery(b"x" * 32, "<f1@example.com>", value)
    assert "does not verify" in forgery(KEY, "<f2@example.com>", value)  # copied onto other mail
    assert "does not verify" in forgery(KEY, "<f1@example.com>", value.replace("rep=zhang", "rep=li"))
    assert "no signature" in forgery(KEY, "<f1@example.com>", "forward; rule=eu; rep=zhang")


def test_anyone_can_write_the_header_but_only_a_signed_one_is_ours(config) -> None:
    """security D15: any external mail with `X-Mailrouter:` was filed in Ignored, unseen."""
    forged = hans_inquiry(headers={ROUTER_HEADER.lower(): "forward; rule=x"})
    decision = decide(forged, config, TeamState())
    assert decision.outcome is Outcome.UNRECOGNIZED
    assert "X-Mailrouter marker, but it carries no signature" in decision.reason
    ours = hans_inquiry(headers={ROUTER_HEADER.lower(): signed(config.marker_key, "<q1@buyer.de>", "notice")})
    assert decide(ours, config, TeamState()).reason == "sent by mailrouter itself"


def test_notices_and_digests_carry_a_signed_marker() -> None:
    msg = EmailMessage()
    msg["Message-ID"] = "<mr.notice.1@example.com>"
    mark_automatic(msg, "notice", KEY)
    assert forgery(KEY, "<mr.notice.1@example.com>", msg[ROUTER_HEADER]) is None


def test_the_key_is_made_once_0600_and_kept(tmp_path: Path, config) -> None:
    old = os.umask(0)
    try:
        key = load_or_create_key(tmp_path / "state" / "router.key")
    finally:
        os.umask(old)
    path = tmp_path / "state" / "router.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 32
    assert load_or_create_key(path) == key
    keyed = with_installation_key(replace(config, marker_key_file=path))
    assert keyed.marker_key == key and key not in repr(keyed).encode()


def test_the_key_file_is_beside_the_database(config) -> None:
    assert config.marker_key_file == Path(config.database[len("sqlite:///"):]).parent / "router.key"


# -- mail From our own addresses

def test_own_domains_come_from_the_mailboxes_and_reps_not_free_mail(config) -> None:
    assert config.own_domains == frozenset({"example.com"})


@pytest.mark.parametrize("results", [
    "mx.example.com; dmarc=pass header.from=example.com",
    "mx.example.com; auth=pass smtp.auth=li@example.com",
])
def test_a_rep_vouched_for_by_our_server_is_ours(config, results: str) -> None:
    q = hans_inquiry(from_address="li@example.com", sender="li@example.com",
                     headers={"authentication-results": results})
    decision = decide(q, replace(config, authserv_ids=frozenset({"mx.example.com"})), TeamState())
    assert decision.outcome is Outcome.IGNORED


@pytest.mark.parametrize("results", [
    "",  # nothing vouches
    "mx.example.com; dmarc=fail header.from=example.com",
    "mx.attacker.test; dmarc=pass header.from=example.com",  # someone else's server
    "mx.example.com; spf=pass smtp.mailfrom=attacker.test",  # SPF of another domain says nothing of From
])
def test_a_rep_address_nobody_vouches_for_is_shown_to_the_manager(config, results: str) -> None:
    headers = {"authentication-results": results} if results else {}
    q = hans_inquiry(from_address="zhang@example.com", sender="zhang@example.com", headers=headers)
    decision = decide(q, replace(config, authserv_ids=frozenset({"mx.example.com"})), TeamState())
    assert decision.outcome is Outcome.UNRECOGNIZED
    assert decision.reason.startswith("From: our own address zhang@example.com, but not authenticated")


# -- Reply-To

@pytest.mark.parametrize("given", ["sales@example.com", "zhang@example.com", "accounting@example.com",
                                   "x@mail.example.com"])
def test_an_own_reply_to_is_never_used(given: str) -> None:
    q = hans_inquiry(reply_to=given, reply_to_name="Not Hans")
    target = reply_target(q, OWN, OWN_DOMAINS, known_customer=False)
    assert (target.address, target.name) == ("hans@buyer.de", "Hans Müller")
    assert f"our own address {given}: not used" in target.warning


def test_the_display_name_belongs_to_the_address_used() -> None:
    """security D2: `Reply-To: Buyer Ten <evil@attacker.test>` paired the From's name with another address."""
    q = hans_inquiry(reply_to="evil@attacker.test", reply_to_name="")
    assert (reply_target(q, OWN, OWN_DOMAINS, False).address,
            reply_target(q, OWN, OWN_DOMAINS, False).name) == ("evil@attacker.test", "")
    raw = (b"From: Buyer Ten <buyer@acme.de>\r\nReply-To: Purchasing <p@acme-group.de>\r\n"
           b"Subject: RFQ\r\n\r\nPlease quote.\r\n")
    parsed = parse_message(raw, ParseSettings(free_mail_domains=DEFAULT_FREE_MAIL_DOMAINS))
    assert (parsed.reply_to, parsed.reply_to_name, parsed.sender_name) == ("p@acme-group.de", "Purchasing", "Buyer Ten")


def test_a_known_customers_reply_to_elsewhere_is_flagged_and_not_used() -> None:
    q = hans_inquiry(reply_to="evil@attacker.test", reply_to_name="Victor Victim")
    target = reply_target(q, OWN, OWN_DOMAINS, known_customer=True)
    assert (target.address, target.name, target.suspect) == ("hans@buyer.de", "Hans Müller", "evil@attacker.test")
    assert "not to the known customer's address hans@buyer.de" in target.warning and "核实" in target.warning


def test_a_form_naming_our_own_address_has_nobody_to_reply_to() -> None:
    q = hans_inquiry(sender="li@example.com", reply_to="li@example.com", from_address="noreply@example.com")
    assert reply_target(q, OWN, OWN_DOMAINS, known_customer=False).address == ""


# -- the clock

NOW = datetime(2026, 12, 4, 10, tzinfo=timezone.utc)


def sent(*to: str, refs: tuple[str, ...] = ("<fwd1@example.com>",)) -> Outgoing:
    return Outgoing("<r1@example.com>", "zhang@example.com", frozenset(to), frozenset(refs), NOW)


def test_a_reply_to_the_suspect_reply_to_alone_does_not_stop_the_clock() -> None:
    ids, assigned = ("<fwd1@example.com>", "<q1@buyer.de>"), NOW - timedelta(minutes=5)
    assert not is_reply_to(sent("evil@attacker.test"), "hans@buyer.de", ids, assigned, "evil@attacker.test")
    assert is_reply_to(sent("hans@buyer.de", "evil@attacker.test"), "hans@buyer.de", ids, assigned,
                       "evil@attacker.test")
    assert is_reply_to(sent("p@acme-group.de"), "hans@buyer.de", ids, assigned)  # nothing flagged: as before


# -- own domains in the registry

def test_own_addresses_never_become_customers() -> None:
    assert never_a_customer("li@example.com", OWN, OWN_DOMAINS)
    assert never_a_customer("ceo@example.com", OWN, OWN_DOMAINS)
    assert never_a_customer("hans@buyer.de", OWN, OWN_DOMAINS) is None


def test_registry_import_refuses_our_own_domain_with_the_reason(tmp_path: Path, capsys, config) -> None:
    """security D3: nothing kept a list from making the company's own domain a customer."""
    import argparse

    from sqlalchemy import select

    from mailrouter.registry.cli import add_registry_parser
    from mailrouter.registry.models import CustomerEmailRow
    from mailrouter.store import open_database

    path = tmp_path / "fair.csv"
    path.write_text("Name,Email,Company\nLi Na,li@example.com,Us\nAnn,ann@mail.example.com,Us too\n"
                    "Maria,maria@rossi.it,Rossi\n", encoding="utf-8")
    keyed = replace(config, database=f"sqlite:///{tmp_path / 'r.db'}")
    parser = argparse.ArgumentParser()
    add_registry_parser(parser.add_subparsers())
    args = parser.parse_args(["registry", "import", str(path), "--source", "fair", "--owner", "zhang"])
    assert args.handler(args, keyed) == 0
    out = capsys.readouterr().out
    assert "created 1" in out and "invalid 2" in out
    assert "line 2: li@example.com is at our own mail domain" in out
    assert "line 3: ann@mail.example.com is at our own mail domain" in out
    with open_database(keyed.database)() as session:
        assert list(session.scalars(select(CustomerEmailRow.email))) == ["maria@rossi.it"]
