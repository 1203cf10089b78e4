"""Reading the SLA parts of config.toml: business calendars and durations.

Like mailrouter.config.load, parsers collect every problem instead of stopping at the first, and
each problem names the file and the full key so a sysadmin can fix them all in one pass.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from mailrouter.sla.hours import DEFAULT_GRACE, WEEKDAY_NAMES, BusinessCalendar, Span, parse_span, parse_spans


class ConfigProblem(NamedTuple):
    """Same fields, in the same order, as mailrouter.config.load.Problem: `Problem(*p)` converts."""

    file: str
    key: str
    message: str


_DURATION = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
DURATION_HINT = "must be like 5m, 2h, 1d or 1h30m"


def parse_duration(text: str) -> timedelta:
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


class Collector:
    """Problems of one file under one key prefix ("teams.europe.hours.")."""

    def __init__(self, file: str, prefix: str):
        self.file = file
        self.prefix = prefix
        self.problems: list[ConfigProblem] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, self.prefix + key, message))

    def unknown_keys(self, data: dict[str, Any], known: set[str], where: str = "") -> None:
        for key in data:
            if key not in known:
                self.add(where + key, f"unknown key (known: {', '.join(sorted(known))})")

    def typed(self, data: dict[str, Any], key: str, kind: type, default: Any, where: str = "") -> Any:
        value = data.get(key, default)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.add(where + key, f"must be {kind.__name__}, not {value!r}")
            return default
        return value

    def duration(self, data: dict[str, Any], key: str, default: timedelta, where: str = "") -> timedelta:
        if key not in data:
            return default
        try:
            return parse_duration(data[key])
        except ValueError:
            self.add(where + key, f"{DURATION_HINT}, not {data[key]!r}")
            return default


CALENDAR_KEYS = {"timezone", "weekdays", "hours", "country", "subdivision", "extra_holidays",
                 "extra_workdays", "quiet_hours", "grace"}


def calendar_from_config(raw: dict[str, Any], file: str, key_prefix: str,
                         default_tz: str = "Asia/Shanghai") -> tuple[BusinessCalendar, list[ConfigProblem]]:
    """Read a team's `[teams.X.hours]` table (every key optional, see CALENDAR_KEYS)."""
    c = Collector(file, key_prefix)
    c.unknown_keys(raw, CALENDAR_KEYS)
    country = _country(c, raw)
    calendar = BusinessCalendar(
        tz=_zone(c, raw.get("timezone", default_tz)),
        weekdays=_weekdays(c, raw.get("weekdays", ["mon", "tue", "wed", "thu", "fri"])),
        hours=_hours(c, raw.get("hours", ["09:00-12:00", "13:30-18:00"])),
        country=country,
        subdivision=_subdivision(c, country, raw.get("subdivision")),
        extra_holidays=_dates(c, raw, "extra_holidays"),
        extra_workdays=_dates(c, raw, "extra_workdays"),
        quiet_hours=_quiet(c, raw.get("quiet_hours", "22:00-07:00")),
        grace=c.duration(raw, "grace", DEFAULT_GRACE),
    )
    return calendar, c.problems


def _zone(c: Collector, name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        c.add("timezone", f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)")
        return ZoneInfo("UTC")


def _weekdays(c: Collector, value: Any) -> frozenset[int]:
    names = value if isinstance(value, list) else [value]
    days = set()
    for name in names:
        if not isinstance(name, str) or name.lower()[:3] not in WEEKDAY_NAMES:
            c.add("weekdays", f"{name!r} is not a weekday (use mon, tue, wed, thu, fri, sat, sun)")
            continue
        days.add(WEEKDAY_NAMES.index(name.lower()[:3]))
    return frozenset(days) or frozenset(range(5))


def _hours(c: Collector, value: Any) -> tuple[Span, ...]:
    texts = value if isinstance(value, list) else [value]
    try:
        spans = parse_spans([str(t) for t in texts])
    except ValueError as exc:
        c.add("hours", f"{exc} (write a list like [\"09:00-12:00\", \"13:30-18:00\"])")
        return (Span(9 * 60, 18 * 60),)
    if not spans:
        c.add("hours", "at least one opening span is required")
        return (Span(9 * 60, 18 * 60),)
    return spans


def _country(c: Collector, raw: dict[str, Any]) -> str | None:
    country = raw.get("country")
    if country is None or country == "":
        return None
    if not isinstance(country, str) or country.upper() not in holidays.list_supported_countries():
        c.add("country", f"{country!r} is not a country the holidays library knows (ISO code like CN, DE, US)")
        return None
    return country.upper()


def _subdivision(c: Collector, country: str | None, value: Any) -> str | None:
    if not value:
        return None
    known = holidays.list_supported_countries().get(country or "", [])
    if country is None or str(value) not in known:
        c.add("subdivision", f"{value!r} is not a subdivision of {country or 'the (missing) country'}")
        return None
    return str(value)


def _dates(c: Collector, raw: dict[str, Any], key: str) -> frozenset[date]:
    result = set()
    for value in raw.get(key, []):
        # TOML has a date type; accept ISO strings too, since people quote dates.
        try:
            result.add(value if isinstance(value, date) else date.fromisoformat(value))
        except (TypeError, ValueError):
            c.add(key, f"{value!r} is not a date like 2026-10-09")
    return frozenset(result)


def _quiet(c: Collector, value: Any) -> Span | None:
    if value in ("", None, False):
        return None
    try:
        return parse_span(str(value))
    except ValueError as exc:
        c.add("quiet_hours", f"{exc}; write \"22:00-07:00\", or \"\" for none")
        return Span(22 * 60, 7 * 60)
