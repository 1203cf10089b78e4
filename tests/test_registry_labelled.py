"""The labelled registry cases (tests/data/registry_companies.toml): messages parsed by the real
parser, matched against an imported registry; owner and kind of evidence per case."""
from __future__ import annotations

import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS
from mailrouter.parse.message import parse_message
from mailrouter.registry.match import match_sender
from mailrouter.store import open_database
from tests.factories import example_config
from mailrouter.registry.importer import import_file

CASES = tomllib.loads((Path(__file__).parent / "data" / "registry_companies.toml").read_text("utf-8"))
NOW = datetime(2026, 12, 4, tzinfo=timezone.utc)
REPS = {"zhang": "zhang", "li": "li", "wang": "wang", "chen": "chen"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Session:
    tmp = tmp_path_factory.mktemp("labelled")
    sheet = tmp / "registry.csv"
    sheet.write_text(CASES["registry"], encoding="utf-8")
    session = open_database(f"sqlite:///{tmp / 'r.db'}")()
    result = import_file(session, sheet, source="CRM", owner_aliases=REPS,
                         free_mail_domains=DEFAULT_FREE_MAIL_DOMAINS, now=NOW)
    session.commit()
    assert (result.created, result.invalid) == (6, [])
    return session


def raw(case: dict) -> bytes:
    return (f"From: Buyer <{case['sender']}>\r\nTo: sales@example.com\r\nSubject: Inquiry\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + case["body"]).encode()


@pytest.mark.parametrize("case", CASES["case"], ids=[c["note"] for c in CASES["case"]])
def test_labelled_case(registry: Session, case: dict) -> None:
    inquiry = parse_message(raw(case), example_config().parse)
    found = match_sender(registry, inquiry, DEFAULT_FREE_MAIL_DOMAINS, NOW, 180)
    got = (found.owner, found.how) if found else ("", "")
    assert got == (case["owner"], case["how"]), found.evidence if found else inquiry.signature
