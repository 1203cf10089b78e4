"""Reading exported contact lists: CSV in whatever encoding Excel and WPS wrote, or XLSX.

Rows come out as (1-based line number, cells) so every complaint can point at the line a
person sees in their spreadsheet.
"""
from __future__ import annotations

import codecs
import csv
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

Row = tuple[int, list[str]]
XLSX_SUFFIXES = (".xlsx", ".xlsm")


def read_rows(path: Path) -> list[Row]:
    """All non-empty rows of the file, the header row included."""
    rows = _xlsx_rows(path) if path.suffix.lower() in XLSX_SUFFIXES else _csv_rows(path)
    return [(n, cells) for n, cells in rows if any(c.strip() for c in cells)]


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with BOM, else GB18030 as Chinese Excel saves."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def _csv_rows(path: Path) -> Iterator[Row]:
    text = decode_csv(path.read_bytes())
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:8192], ",;\t")
    except csv.Error:  # one column, or too little text to tell
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    start = 1
    for cells in reader:
        yield start, [c.strip() for c in cells]
        start = reader.line_num + 1  # a quoted field may span lines


def _xlsx_rows(path: Path) -> Iterator[Row]:
    from openpyxl import load_workbook

    with warnings.catch_warnings():
        # openpyxl warns about styles and data validation it ignores; only values matter here.
        warnings.simplefilter("ignore", UserWarning)
        book = load_workbook(path, read_only=True, data_only=True)
    try:
        for number, values in enumerate(book.active.iter_rows(values_only=True), start=1):
            yield number, [_cell_text(v) for v in values]
    finally:
        book.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # phone numbers typed into Excel become floats
    return str(value).strip()
