"""Importing contact lists (CSV in two encodings, XLSX), export round-trip and the CLI."""
from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS
from mailrouter.registry.match import match_sender
from mailrouter.registry.cli import add_registry_parser
from mailrouter.registry.importer import ImportFailed, ImportResult, export_csv, import_file
from mailrouter.registry.models import CustomerEmailRow, CustomerPhoneRow, CustomerRow
from mailrouter.store import open_database
from tests.factories import example_config, make_inquiry

NOW = datetime(2025, 4, 20, 8, 0, tzinfo=timezone.utc)
REPS = {"zhang": "zhang", "li": "li", "zhang wei 张伟": "zhang"}
FAIR = ("姓名,公司,电话,邮箱,国家\n"
        "Hans Müller,Acme Industrietechnik GmbH,030 12345678,,德国\n"
        "Maria Rossi,Rossi S.r.l.,+39 02 1234 5678,maria@rossi.it,意大利\n")


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    with open_database(f"sqlite:///{tmp_path / 'r.db'}")() as s:
        yield s


def run_import(session: Session, path: Path, **options) -> ImportResult:
    options.setdefault("source", "Canton Fair 2025")
    result = import_file(session, path, owner_aliases=REPS, free_mail_domains=DEFAULT_FREE_MAIL_DOMAINS,
                         now=NOW, **options)
    session.commit()
    return result


def counts(r: ImportResult) -> tuple[int, int, int, int, int]:
    return r.created, r.updated, r.unchanged, r.skipped, len(r.invalid)


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_trade_show_contact_matched_by_company_and_phone_from_free_mail(session, tmp_path) -> None:
    path = write(tmp_path, "fair.csv", FAIR, "gb18030")
    assert counts(run_import(session, path, owner="li")) == (2, 0, 0, 0, 0)
    inquiry = make_inquiry(sender="hans.mueller@gmail.com", domain="gmail.com", free_mail=True,
                           signature="Hans Müller\nACME Industrietechnik GmbH\nTel +49 30 12345678")
    found = match_sender(session, inquiry, DEFAULT_FREE_MAIL_DOMAINS, NOW, 180)
    assert found is not None and (found.how, found.owner) == ("company+phone", "li")
    assert found.customer.source == "Canton Fair 2025" and found.customer.country == "DE"


def test_bad_rows_reported_with_line_numbers_rest_imported(session, tmp_path) -> None:
    text = ("\ufeffName,E-mail,Company,Tel,Country,Owner\n"
            "Ann,ann@alpha.com,Alpha Ltd,+1 212 555 0123,USA,zhang\n"
            "Bob,bob@@beta,Beta Inc,,US,\n"
            "Cid,cid@gamma.com,Gamma,12,DE,\n"
            "Dee,dee@delta.com,Delta,,FR,nobody\n"
            "Eve,,,+44 20 7946 0958,GB,\n"
            "Fay,fay@zeta.de,Zeta GmbH,,DE,Zhang Wei 张伟\n")
    path = write(tmp_path, "list.csv", text)
    result = run_import(session, path)
    assert counts(result) == (2, 0, 0, 0, 4)
    assert [(bad.line, bad.reason) for bad in result.invalid] == [
        (3, "bad email 'bob@@beta'"), (4, "unparseable phone '12'"),
        (5, "unknown owner rep 'nobody'"),
        (6, "nothing to recognise the customer by: needs an email, or a company name and a phone")]
    owners = dict(session.execute(select(CustomerRow.company, CustomerRow.owner)).all())
    assert owners == {"Alpha Ltd": "zhang", "Zeta GmbH": "zhang"}
    # the same file again changes nothing
    assert counts(run_import(session, path)) == (0, 0, 2, 0, 4)


def test_duplicates_within_file_and_against_registry(session, tmp_path) -> None:
    path = write(tmp_path, "dups.csv", "email,company,phone,country\n"
                 "a@acme.de,Acme GmbH,,DE\n"
                 "b@acme.de,,+49 30 12345678,DE\n"  # same corporate domain: same customer
                 "x@gmail.com,ACME,030 12345678,DE\n"  # company + phone: same customer
                 "y@gmail.com,Other,,DE\n")
    assert counts(run_import(session, path)) == (2, 2, 0, 0, 0)
    emails = session.scalars(select(CustomerEmailRow.email).order_by(CustomerEmailRow.email)).all()
    assert emails == ["a@acme.de", "b@acme.de", "x@gmail.com", "y@gmail.com"]
    assert session.scalar(select(func.count()).select_from(CustomerRow)) == 2
    again = write(tmp_path, "again.csv", "email\nc@acme.de\n")
    assert counts(run_import(session, again, on_duplicate="skip")) == (0, 0, 0, 1, 0)
    assert session.scalar(select(func.count()).select_from(CustomerEmailRow)) == 4


def test_dry_run_writes_nothing(session, tmp_path) -> None:
    result = run_import(session, write(tmp_path, "fair.csv", FAIR), dry_run=True)
    assert counts(result) == (2, 0, 0, 0, 0) and result.dry_run
    assert session.scalar(select(func.count()).select_from(CustomerRow)) == 0


def test_xlsx_with_title_row_and_mapping_override(session, tmp_path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["Canton Fair 2025 — scanned badges"])
    sheet.append(["联系人", "公司名称", "手机", "Mail address", "国家"])
    sheet.append(["王先生", "Delta Trading Co., Ltd.", 8613800138000, "wang@delta.cn", "中国"])
    book.save(tmp_path / "badges.xlsx")
    result = run_import(session, tmp_path / "badges.xlsx", mapping={"Mail address": "email"})
    assert counts(result) == (1, 0, 0, 0, 0)
    row = session.scalars(select(CustomerRow)).one()
    assert (row.contact_name, row.company_key, row.country) == ("王先生", "deltatrading", "CN")
    assert session.scalars(select(CustomerPhoneRow.e164)).one() == "+8613800138000"


def test_file_without_usable_columns_fails_whole(session, tmp_path) -> None:
    with pytest.raises(ImportFailed, match="no header row"):
        run_import(session, write(tmp_path, "x.csv", "foo,bar\n1,2\n"))
    with pytest.raises(ImportFailed, match="unknown field"):
        run_import(session, write(tmp_path, "fair.csv", FAIR), mapping={"公司": "firm"})


def test_export_round_trips_through_import(session, tmp_path) -> None:
    run_import(session, write(tmp_path, "fair.csv", FAIR), owner="zhang")
    exported = tmp_path / "out.csv"
    with exported.open("w", encoding="utf-8-sig", newline="") as out:
        assert export_csv(session, out) == 2
    assert counts(run_import(session, exported)) == (0, 0, 2, 0, 0)
    with open_database(f"sqlite:///{tmp_path / 'fresh.db'}")() as fresh:
        assert counts(run_import(fresh, exported, source="unused")) == (2, 0, 0, 0, 0)
        second = tmp_path / "second.csv"
        with second.open("w", encoding="utf-8-sig", newline="") as out:
            export_csv(fresh, out)
    assert second.read_text("utf-8-sig") == exported.read_text("utf-8-sig")


def test_cli_import_show_transfer_set_status(tmp_path, capsys) -> None:
    config = replace(example_config(), database=f"sqlite:///{tmp_path / 'cli.db'}")
    parser = argparse.ArgumentParser()
    add_registry_parser(parser.add_subparsers())
    path = write(tmp_path, "fair.csv", FAIR + "Bad,Bad Co,,nope@,德国\n")

    def run(*argv: str) -> int:
        args = parser.parse_args(["registry", *argv])
        return args.handler(args, config)

    assert run("import", str(path), "--source", "Canton Fair 2025", "--owner", "zhang") == 0
    out = capsys.readouterr().out
    assert "created 2, updated 0, unchanged 0, skipped 0, invalid 1" in out
    assert "line 4: bad email 'nope@'" in out and "email ← 邮箱" in out
    assert run("transfer", "--from", "zhang", "--to", "wang") == 0
    assert run("set-status", "maria@rossi.it", "do-not-contact", "--reason", "asked us") == 0
    assert run("show", "rossi.it") == 0
    shown = capsys.readouterr().out
    assert "owner:    wang" in shown and "status:   do_not_contact (asked us)" in shown
    assert "zhang → wang  transfer from zhang" in shown
    assert run("show", "nobody.example") == 1
    assert "no customer matches" in capsys.readouterr().err
