"""Cells for Excel, LibreOffice and WPS: text they would run as a formula is neutralised.

The OWASP CSV-injection rule: a cell starting with = + - @ TAB or CR gets a leading apostrophe,
which the spreadsheet shows as text. Used by every CSV mailrouter writes (registry export,
reports); the registry importer takes the apostrophe off again, so an export imports unchanged.
"""
from __future__ import annotations

from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """Text a spreadsheet could read as a formula gets a leading apostrophe; numbers stay
    numbers. Phone numbers get it too: Excel would read +34600123456 as the number
    34600123456 and drop the plus."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def unneutralise(cell: str) -> str:
    """Undo neutralise, so a cell exported by mailrouter imports back unchanged."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell
