"""Business hours of a team: when the first-reply clock runs, and when reminders may go out.

Pure: every function takes aware datetimes and returns aware datetimes in the team's zone.
Arithmetic is done in UTC because Python subtracts two datetimes sharing one tzinfo as wall
time, which is an hour wrong across a DST change.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays


MINUTES_PER_DAY = 24 * 60
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_GRACE = timedelta(minutes=15)
# No calendar in practice is closed this long; reaching it means no day can ever open.
_SEARCH_DAYS = 400

_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, order=True)
class Span:
    """Opening interval within a local day, in minutes since midnight (end may be 1440)."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_span(text: str) -> Span:
    """"09:00-12:00" -> Span(540, 720); "24:00" is allowed as an end. Raises ValueError."""
    m = _SPAN.match(text)
    if not m:
        raise ValueError(f"{text!r} is not like 09:00-12:00")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if m1 > 59 or m2 > 59 or start >= MINUTES_PER_DAY or end > MINUTES_PER_DAY:
        raise ValueError(f"{text!r} is not a time of day")
    return Span(start, end)


def parse_spans(texts: list[str] | tuple[str, ...]) -> tuple[Span, ...]:
    """Parse and check that spans are ordered and do not overlap (overlap would count twice)."""
    spans = tuple(sorted(parse_span(t) for t in texts))
    for span in spans:
        if span.end <= span.start:
            raise ValueError(f"{span} ends before it starts (spans cannot cross midnight)")
    for a, b in zip(spans, spans[1:]):
        if b.start < a.end:
            raise ValueError(f"{a} and {b} overlap")
    return spans


@functools.lru_cache(maxsize=64)
def _public_holidays(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    # Building a year of holidays is slow-ish; calendars ask about the same years all day long.
    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def _china_day(day: date, weekdays: frozenset[int]) -> bool:
    """Working day in mainland China, make-up working days (调休) included."""
    try:
        is_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        # chinese-calendar only knows years the State Council has published; beyond them the
        # holidays library's CN calendar (which also lists make-up days) is the best guess.
        return bool(_public_holidays("CN", None, day.year).is_working_day(day))
    if is_holiday and name is not None:
        return False  # a statutory holiday or a weekday given off in lieu
    if not is_holiday and day.weekday() >= 5:
        return True  # a Saturday or Sunday declared a working day
    return day.weekday() in weekdays


@dataclass(frozen=True)
class BusinessCalendar:
    """A team's working time. `country=None` means no public holidays, only the extra dates."""

    tz: ZoneInfo
    weekdays: frozenset[int] = frozenset(range(5))  # Monday = 0
    hours: tuple[Span, ...] = (Span(9 * 60, 18 * 60),)
    country: str | None = None  # ISO 3166 alpha-2; "CN" uses chinese-calendar
    subdivision: str | None = None  # e.g. "BY" for Bavaria, "NY" for New York
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    quiet_hours: Span | None = Span(22 * 60, 7 * 60)  # may wrap midnight; None: never quiet
    grace: timedelta = DEFAULT_GRACE
    # Opening spans of a day are asked for again and again by the ladder; not part of equality.
    _cache: dict[date, list[tuple[datetime, datetime]]] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_holidays:
            return False
        if day in self.extra_workdays:
            return True
        if self.country == "CN":
            return _china_day(day, self.weekdays)
        if day.weekday() not in self.weekdays:
            return False
        return not (self.country and day in _public_holidays(self.country, self.subdivision, day.year))

    def spans_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """Opening intervals of one local date, as UTC datetimes (empty on a closed day)."""
        if day not in self._cache:
            spans = []
            if self.is_working_day(day):
                spans = [(self._instant(day, s.start), self._instant(day, s.end)) for s in self.hours]
            self._cache[day] = spans
        return self._cache[day]

    def _instant(self, day: date, minutes: int) -> datetime:
        # Wall time -> UTC; a time in a spring-forward gap maps past the gap, as clocks do.
        wall = datetime.combine(day, time()) + timedelta(minutes=minutes)
        return wall.replace(tzinfo=self.tz).astimezone(timezone.utc)

    def _spans_from(self, t: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals that end after t, clipped to start no earlier than t, in order."""
        t = _utc(t)
        day = t.astimezone(self.tz).date()
        for offset in range(_SEARCH_DAYS):
            for start, end in self.spans_on(day + timedelta(days=offset)):
                if end > t:
                    yield max(start, t), end
        raise ValueError(f"no opening hours in the {_SEARCH_DAYS} days after {t.isoformat()}")

    def local(self, t: datetime) -> datetime:
        return _utc(t).astimezone(self.tz)

    def is_open(self, t: datetime) -> bool:
        t = _utc(t)
        return any(s <= t < e for s, e in self.spans_on(t.astimezone(self.tz).date()))

    def next_opening(self, t: datetime) -> datetime:
        """The earliest instant at or after t when the team is open (t itself if open)."""
        start, _ = next(self._spans_from(t))
        return self.local(start)

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when `duration` of open time has passed since start."""
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        if not duration:
            return self.local(start)
        remaining = duration
        for s, e in self._spans_from(start):
            if e - s >= remaining:
                return self.local(s + remaining)
            remaining -= e - s
        raise AssertionError("unreachable: _spans_from raises when it runs out")

    def business_seconds_between(self, a: datetime, b: datetime) -> float:
        """Open time in [a, b), in seconds; negative when b is before a."""
        a, b = _utc(a), _utc(b)
        if b < a:
            return -self.business_seconds_between(b, a)
        total = timedelta(0)
        for s, e in self._spans_from(a):
            if s >= b:
                break
            total += min(e, b) - s
        return total.total_seconds()

    def due_at(self, arrival: datetime, delay: timedelta, grace: timedelta | None = None) -> datetime:
        """When a reply is due. Out of hours the morning's backlog gets `grace` from opening,
        whatever the delay, so Friday 23:00 is due Monday 09:15 rather than 09:05 for everyone."""
        if self.is_open(arrival):
            return self.add_business_time(arrival, delay)
        opening = _utc(self.next_opening(arrival))
        return self.local(opening + (self.grace if grace is None else grace))

    def in_quiet_hours(self, t: datetime) -> bool:
        if self.quiet_hours is None or self.quiet_hours.start == self.quiet_hours.end:
            return False
        local = self.local(t)
        minute = local.hour * 60 + local.minute
        q = self.quiet_hours
        if q.start < q.end:
            return q.start <= minute < q.end
        return minute >= q.start or minute < q.end

    def next_allowed_send(self, t: datetime) -> datetime:
        """t itself, or the end of the quiet hours t falls in (team time, DST-aware)."""
        if not self.in_quiet_hours(t):
            return self.local(t)
        assert self.quiet_hours is not None
        local = self.local(t)
        day = local.date()
        if local.hour * 60 + local.minute >= self.quiet_hours.end:
            day += timedelta(days=1)  # evening part of a quiet span that wraps midnight
        return self.local(self._instant(day, self.quiet_hours.end))


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()}: the SLA clock needs aware datetimes")
    return t.astimezone(timezone.utc)
