"""One problem type and one problem-collecting reader for every part of the configuration.

config.toml, the rule files and each section's own reader (sla, registry, digest, metrics,
webhooks, calendars, ladders) record problems here instead of raising at the first, and each
problem names the file, the full key and what is wrong, so a sysadmin fixes them all in one
pass. This module imports nothing from mailrouter: it is the floor everything else stands on.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


_DURATION = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
DURATION_HINT = "must be like 5m, 2h, 1d or 1h30m"


def parse_duration(text: object) -> timedelta:
    """"1h30m" -> 1:30:00. Raises ValueError for anything else (bare numbers included:
    "30" could mean seconds or minutes, and guessing wrong pages someone at night)."""
    cleaned = text.replace(" ", "").lower() if isinstance(text, str) else ""
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise ValueError(DURATION_HINT)
    return sum((timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), timedelta(0))


def format_duration(d: timedelta) -> str:
    """The inverse of parse_duration, used in step keys and logs: 1:30:00 -> "1h30m"."""
    seconds = int(d.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0m"


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a table"}


def kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kind)
    return _KIND_NAMES.get(kind, kind.__name__)


class Reader:
    """Typed access to TOML tables of one file that records problems instead of raising.

    `prefix` is prepended to every key this reader reports ("teams.europe.hours."); `at()`
    gives a reader for a sub-table that shares the same problem list.
    """

    def __init__(self, file: str, problems: list[Problem] | None = None, prefix: str = ""):
        self.file = file
        self.problems: list[Problem] = [] if problems is None else problems
        self.prefix = prefix

    def at(self, prefix: str) -> Reader:
        return Reader(self.file, self.problems, self.prefix + prefix)

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, self.prefix + key, message))

    add = problem

    def table(self, data: dict[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.problem(prefix + key, f"must be a table, not {value!r}")
            return {}
        return value

    def tables(self, data: dict[str, Any], key: str, example: str) -> list[tuple[int, dict[str, Any]]]:
        """An array of tables ([[mailbox]]) as (index, table): a wrong shape is one problem,
        each item that is not a table another."""
        items = data.get(key, [])
        if not isinstance(items, list):
            self.problem(key, f"must be an array of tables: {example}, not {items!r}")
            return []
        good = []
        for i, item in enumerate(items):
            if isinstance(item, dict):
                good.append((i, item))
            else:
                self.problem(f"{key}[{i}]", f"must be a table ({example}), not {item!r}")
        return good

    def get(self, data: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any,
            prefix: str = "", required: bool = False) -> Any:
        if key not in data:
            if required:
                self.problem(prefix + key, "is required")
            return default
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            self.problem(prefix + key, f"must be {kind_name(kind)}, not {value!r}")
            return default
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(prefix + key, f"must be a finite number, not {value!r}")
            return default
        return value

    def typed(self, data: dict[str, Any], key: str, kind: type, default: Any, where: str = "") -> Any:
        return self.get(data, key, kind, default, where)

    def number(self, data: dict[str, Any], key: str, kind: type, default: Any, prefix: str = "",
               low: float | None = None, high: float | None = None, above: float | None = None) -> Any:
        """A typed number in a range; out of range is a problem and gives the default."""
        value = self.get(data, key, kind, default, prefix)
        if key not in data or value is default:
            return value
        if (low is not None and value < low) or (high is not None and value > high) \
                or (above is not None and value <= above):
            if above is not None:
                expect = f"more than {above:g}" + (f" and at most {high:g}" if high is not None else "")
            elif high is not None:
                expect = f"between {low:g} and {high:g}"
            else:
                expect = f"at least {low:g}"
            self.problem(prefix + key, f"must be {expect}, not {value!r}")
            return default
        return value

    def str_list(self, data: dict[str, Any], key: str, prefix: str = "") -> tuple[str, ...]:
        value = data.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(prefix + key, f"must be a list of strings, not {value!r}")
            return ()
        return tuple(value)

    def duration(self, data: dict[str, Any], key: str, default: timedelta, where: str = "") -> timedelta:
        if key not in data:
            return default
        try:
            return parse_duration(data[key])
        except ValueError:
            self.problem(where + key, f"{DURATION_HINT}, not {data[key]!r}")
            return default

    def unknown_keys(self, data: dict[str, Any], known: set[str], prefix: str = "") -> None:
        for key in data:
            if key not in known:
                self.problem(prefix + key, f"unknown key (known: {', '.join(sorted(known))})")


def read_toml(path: Path, problems: list[Problem]) -> dict[str, Any]:
    """The document, or {} with a problem: missing, unreadable, not UTF-8 or not TOML."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        problems.append(Problem(str(path), "-", "file not found"))
        return {}
    except IsADirectoryError:
        problems.append(Problem(str(path), "-", "is a folder; give the path of the .toml file"))
        return {}
    except OSError as exc:
        problems.append(Problem(str(path), "-", f"cannot read: {exc.strerror}"))
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(str(path), f"line {line}", "is not UTF-8 (TOML files must be UTF-8; "
                                "save it as UTF-8, e.g. iconv -f GBK -t UTF-8)"))
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(str(path), "-", f"not valid TOML: {exc}"))
        return {}
