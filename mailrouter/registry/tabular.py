"""Reading exported contact lists: CSV in whatever encoding Excel and WPS wrote, or XLSX.

Rows come out lazily as (1-based line number, cells) so every complaint can point at the line a
person sees in their spreadsheet, and a 200,000-row file is never held in memory whole.
"""
from __future__ import annotations

import codecs
import csv
import re
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

Row = tuple[int, list[str]]
XLSX_SUFFIXES = (".xlsx", ".xlsm")
MAX_CELL_CHARS = 1 << 20  # the csv module's ceiling: an unclosed quote stops here, not at EOF
_BLOCK = 1 << 16
# Encodings tried in order on BOM-less files; GB18030 is what Chinese Excel's "CSV" writes (GBK).
_GUESSES = ("utf-8", "gb18030")
# ESC-introduced terminal sequences (CSI "ESC[...m", OSC "ESC]...BEL", two-byte ESC x).
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-_]?)|\x9b[0-?]*[ -/]*[@-~]")


class TableError(Exception):
    """The file cannot be read as a table at all; the message says why, for a person."""


def strip_controls(text: str) -> str:
    """Text without terminal escape sequences or control characters, newlines kept.

    Imported lists and mail come from strangers; their text must not repaint an admin's terminal.
    """
    if not _CONTROL.search(text):
        return text
    return _RUNS.sub(" ", _CONTROL.sub(" ", _ESCAPES.sub("", text)))


# Unicode Cc, Zl and Zp without the newline: one regex keeps a 200k-row import fast.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_RUNS = re.compile(r"[^\S\n]{2,}")


def read_rows(path: Path) -> Iterator[Row]:
    """Non-empty rows of the file, the header row included, read as they are consumed."""
    rows = _xlsx_rows(path) if path.suffix.lower() in XLSX_SUFFIXES else _csv_rows(path)
    return ((n, cells) for n, cells in rows if any(c.strip() for c in cells))


def detect_encoding(path: Path) -> str:
    """The codec the whole file decodes with, read block by block; TableError if none does."""
    with path.open("rb") as f:
        head = f.read(_BLOCK)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if (guess := _bomless_utf16(head)) and _decodes(path, guess, nul_ok=True):
        return guess
    for guess in _GUESSES:
        if _decodes(path, guess):
            return guess
    raise TableError("not a text CSV: it is neither UTF-8, UTF-16 nor GB18030/GBK; save it "
                     "from the spreadsheet as \"CSV UTF-8\" or as .xlsx")


def _bomless_utf16(head: bytes) -> str | None:
    """UTF-16 without a BOM shows as NULs in every other byte: separators and digits are ASCII."""
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if max(even, odd) < len(head) // 8:  # too few to be the high bytes of ASCII characters
        return None
    return "utf-16-le" if odd > 4 * even else "utf-16-be" if even > 4 * odd else None


def _decodes(path: Path, encoding: str, nul_ok: bool = False) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as f:
        try:
            while block := f.read(_BLOCK):
                if not nul_ok and b"\0" in block:
                    return False  # binary, whatever it might decode to
                if "\0" in decoder.decode(block):
                    return False
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _csv_rows(path: Path) -> Iterator[Row]:
    encoding = detect_encoding(path)
    with path.open(encoding=encoding, newline="") as text:
        sample = text.read(8192)
        text.seek(0)
        try:
            dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, ",;\t")
        except csv.Error:  # one column, or too little text to tell
            dialect = csv.excel
        yield from _parse_csv(text, dialect)


def _parse_csv(text: Iterable[str], dialect: type[csv.Dialect] | csv.Dialect) -> Iterator[Row]:
    if csv.field_size_limit() < MAX_CELL_CHARS:
        csv.field_size_limit(MAX_CELL_CHARS)  # raised once: the default 128 KiB is a traceback today
    reader = csv.reader(text, dialect)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise TableError(f"line {start}: {_csv_reason(exc)}") from None
        yield start, [strip_cell(c) for c in cells]
        start = reader.line_num + 1  # a quoted field may span lines


def _csv_reason(exc: csv.Error) -> str:
    if "field larger" in str(exc):
        return (f"a cell longer than {MAX_CELL_CHARS:,} characters; probably a quote (\") that "
                "is never closed")
    return f"not readable as CSV ({exc})"


def strip_cell(cell: str) -> str:
    return strip_controls(cell).strip() if cell else ""


def _xlsx_rows(path: Path) -> Iterator[Row]:
    from xml.parsers.expat import ExpatError

    from openpyxl.utils.exceptions import InvalidFileException

    try:
        yield from _xlsx_rows_unchecked(path)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError, TypeError,
            EOFError, ExpatError, SyntaxError) as exc:  # SyntaxError: ElementTree's ParseError
        raise TableError(f"not a readable .xlsx workbook ({type(exc).__name__}: {exc}); "
                         "open it in Excel or WPS and save it again, or save it as CSV") from None


def _xlsx_rows_unchecked(path: Path) -> Iterator[Row]:
    from openpyxl import load_workbook

    with warnings.catch_warnings():
        # openpyxl warns about styles and data validation it ignores; only values matter here.
        warnings.simplefilter("ignore", UserWarning)
        book = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.active
        if sheet is None:
            raise ValueError("the workbook has no sheet")
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_cell_text(v) for v in values]
    finally:
        book.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # phone numbers typed into Excel become floats
    return strip_cell(str(value))
