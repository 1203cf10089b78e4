"""Reading the SLA parts of config.toml: business calendars and durations.

With mailrouter.config.reader, parsers collect every problem instead of stopping at the first, and
each problem names the file and the full key so a sysadmin can fix them all in one pass.
"""
from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from mailrouter.config.reader import DURATION_HINT, Problem, Reader, format_duration, parse_duration
from mailrouter.sla.hours import DEFAULT_GRACE, WEEKDAY_NAMES, BusinessCalendar, Span, parse_span, parse_spans


__all__ = ["DURATION_HINT", "calendar_from_config", "format_duration", "parse_duration"]

CALENDAR_KEYS = {"timezone", "weekdays", "hours", "country", "subdivision", "extra_holidays",
                 "extra_workdays", "quiet_hours", "grace"}


def calendar_from_config(raw: dict[str, Any], file: str, key_prefix: str,
                         default_tz: str = "Asia/Shanghai") -> tuple[BusinessCalendar, list[Problem]]:
    """Read a team's `[teams.X.hours]` table (every key optional, see CALENDAR_KEYS)."""
    c = Reader(file, prefix=key_prefix)
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


def _zone(c: Reader, name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        c.add("timezone", f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)")
        return ZoneInfo("UTC")


def _weekdays(c: Reader, value: Any) -> frozenset[int]:
    names = value if isinstance(value, list) else [value]
    days = set()
    for name in names:
        if not isinstance(name, str) or name.lower()[:3] not in WEEKDAY_NAMES:
            c.add("weekdays", f"{name!r} is not a weekday (use mon, tue, wed, thu, fri, sat, sun)")
            continue
        days.add(WEEKDAY_NAMES.index(name.lower()[:3]))
    return frozenset(days) or frozenset(range(5))


def _hours(c: Reader, value: Any) -> tuple[Span, ...]:
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


def _country(c: Reader, raw: dict[str, Any]) -> str | None:
    country = raw.get("country")
    if country is None or country == "":
        return None
    if not isinstance(country, str) or country.upper() not in holidays.list_supported_countries():
        c.add("country", f"{country!r} is not a country the holidays library knows (ISO code like CN, DE, US)")
        return None
    return country.upper()


def _subdivision(c: Reader, country: str | None, value: Any) -> str | None:
    if not value:
        return None
    known = holidays.list_supported_countries().get(country or "", [])
    if country is None or str(value) not in known:
        c.add("subdivision", f"{value!r} is not a subdivision of {country or 'the (missing) country'}")
        return None
    return str(value)


def _dates(c: Reader, raw: dict[str, Any], key: str) -> frozenset[date]:
    values = raw.get(key, [])
    if not isinstance(values, list):
        c.add(key, f"must be a list of dates like [2026-10-09], not {values!r}")
        return frozenset()
    result = set()
    for value in values:
        # TOML has a date type; accept ISO strings too, since people quote dates.
        try:
            result.add(value if isinstance(value, date) else date.fromisoformat(value))
        except (TypeError, ValueError):
            c.add(key, f"{value!r} is not a date like 2026-10-09")
    return frozenset(result)


def _quiet(c: Reader, value: Any) -> Span | None:
    if value in ("", None, False):
        return None
    try:
        return parse_span(str(value))
    except ValueError as exc:
        c.add("quiet_hours", f"{exc}; write \"22:00-07:00\", or \"\" for none")
        return Span(22 * 60, 7 * 60)
