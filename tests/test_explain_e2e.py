"""`explain` tells what the daemon does, on the real mail test bed (issue 16 item 6, done-when (c)).

A registry customer writing from free mail: the rules alone would give this German PCB inquiry
to zhang, the registry gives it to its owner li. `explain` once answered zhang while the daemon
routed to li; it must read the registry and team state as the daemon does, read-only.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from mailrouter.commands.cli import main
from mailrouter.config.schema import Config
from mailrouter.store import MessageRow, open_database
from mailrouter.testing.samples import GERMAN, Sample, compose
from tests.mailcheck import MovableClock, configure, forwards_by_original, parsed, route_all

pytestmark = pytest.mark.integration

START = datetime(2026, 10, 20, 9, 0, tzinfo=timezone.utc)


def explained(capsys, config: Config, eml: Path) -> dict[str, str]:
    """`mailrouter explain` as a manager runs it, its "Label: value" lines as a dict."""
    capsys.readouterr()
    assert main(["-c", str(config.path), "explain", str(eml), "--language", "en"]) == 0
    lines = capsys.readouterr().out.splitlines()
    return {label: value.strip() for label, _, value in (line.partition(":") for line in lines)}


def reason_line(forward) -> str:
    """The "Reason:" line of the forward's text part: what the rep was told."""
    text = forward.get_body(("plain",)).get_content()
    return next(line.partition(":")[2].strip() for line in text.splitlines() if line.startswith("Reason:"))


def test_explain_gives_the_rep_and_reason_the_daemon_routed_a_registry_customer_with(bed, tmp_path, capsys):
    config = configure(bed, tmp_path)
    sheet = tmp_path / "canton-fair.csv"
    sheet.write_text("姓名,公司,电话,国家\nKlaus Becker,Becker Elektronik GmbH,+49 89 1234567,德国\n",
                     encoding="utf-8-sig")
    assert main(["-c", str(config.path), "registry", "import", str(sheet),
                 "--source", "Canton Fair 2025", "--owner", "li", "--language", "en"]) == 0
    # GERMAN signs "Becker Elektronik GmbH / Tel. +49 89 1234567", from a gmail address
    mail = Sample("registry customer", ("sales@example.com",),
                  compose("Klaus <klaus.becker.1970@gmail.com>", "Anfrage Leiterplatten", GERMAN, n=361), "routed")
    eml = tmp_path / "inquiry.eml"
    eml.write_bytes(mail.raw)
    predicted = explained(capsys, config, eml)  # before the daemon has seen it

    route_all(bed, config, [mail], MovableClock(START))
    (rep, forward), = forwards_by_original(bed, config)[str(parsed(mail.raw)["Message-ID"])]
    with open_database(config.database)() as session:
        row, = session.scalars(select(MessageRow)).all()
    assert (row.outcome, row.rep, row.rule, rep) == ("routed", "li", None, "li")  # the owner, no rule
    assert reason_line(forward) == row.reason  # the rep read what the daemon recorded

    assert predicted["Decision"] == "routed -> li (the customer's owner)"
    assert (predicted["Rule"], predicted["Reason"]) == ("-", row.reason)
    afterwards = explained(capsys, config, eml)  # the registry has learnt the address meanwhile
    assert afterwards["Decision"] == "routed -> li (the customer's owner)"
    assert afterwards["Recorded"].startswith(f"routed -> li (#{row.id}, ")
