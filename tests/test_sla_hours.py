"""Business calendars: opening hours, holidays (CN make-up days, DE), DST and quiet hours."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailrouter.sla.hours import BusinessCalendar, Span, parse_span, parse_spans
from mailrouter.sla.durations import calendar_from_config, format_duration, parse_duration

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LUNCH_BREAK = (Span(9 * 60, 12 * 60), Span(13 * 60 + 30, 18 * 60))


def china(**kw: object) -> BusinessCalendar:
    return BusinessCalendar(tz=SHANGHAI, hours=LUNCH_BREAK, country="CN", **kw)  # type: ignore[arg-type]


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


# --- out-of-hours arrival -----------------------------------------------------------------

def test_friday_night_is_due_monday_at_opening_plus_grace() -> None:
    cal = china()
    assert cal.due_at(sh(2026, 3, 13, 23, 0), timedelta(minutes=5)) == sh(2026, 3, 16, 9, 15)


def test_grace_can_be_given_per_call() -> None:
    cal = china()
    due = cal.due_at(sh(2026, 3, 13, 23, 0), timedelta(minutes=5), grace=timedelta(minutes=30))
    assert due == sh(2026, 3, 16, 9, 30)


def test_friday_night_before_a_monday_holiday_waits_until_tuesday() -> None:
    cal = china(extra_holidays=frozenset({date(2026, 3, 16)}))
    assert cal.due_at(sh(2026, 3, 13, 23, 0), timedelta(minutes=5)) == sh(2026, 3, 17, 9, 15)


def test_in_hours_arrival_is_due_after_the_delay() -> None:
    assert china().due_at(sh(2026, 3, 16, 10, 0), timedelta(minutes=5)) == sh(2026, 3, 16, 10, 5)


def test_delay_skips_the_lunch_break() -> None:
    assert china().due_at(sh(2026, 3, 16, 11, 55), timedelta(minutes=15)) == sh(2026, 3, 16, 13, 40)


def test_lunch_break_arrival_gets_grace_after_lunch() -> None:
    assert china().due_at(sh(2026, 3, 16, 12, 30), timedelta(minutes=5)) == sh(2026, 3, 16, 13, 45)


# --- China: statutory holidays and make-up working days (调休) --------------------------

def test_cn_make_up_sunday_is_a_working_day() -> None:
    # 2026-01-04 is a Sunday worked in exchange for the New Year holiday (chinese-calendar data).
    cal = china()
    assert date(2026, 1, 4).weekday() == 6
    assert cal.is_working_day(date(2026, 1, 4))
    assert cal.is_open(sh(2026, 1, 4, 10, 0))


def test_cn_make_up_saturday_after_national_day_is_a_working_day() -> None:
    assert china().is_working_day(date(2026, 10, 10))  # a Saturday


def test_cn_national_day_is_closed_and_the_week_is_skipped() -> None:
    cal = china()
    assert not cal.is_working_day(date(2026, 10, 1))
    assert not cal.is_working_day(date(2026, 10, 7))  # a Wednesday given off in lieu
    assert cal.next_opening(sh(2026, 9, 30, 18, 30)) == sh(2026, 10, 8, 9, 0)


def test_friday_night_before_a_make_up_saturday_is_due_saturday() -> None:
    # 2026-10-09 is a Friday; the Saturday after is a working day.
    assert china().due_at(sh(2026, 10, 9, 23, 0), timedelta(minutes=5)) == sh(2026, 10, 10, 9, 15)


def test_cn_plain_weekend_is_closed() -> None:
    assert not china().is_working_day(date(2026, 3, 14))


def test_extra_workday_opens_a_weekend_and_extra_holiday_closes_a_weekday() -> None:
    cal = china(extra_workdays=frozenset({date(2026, 3, 14)}),
                extra_holidays=frozenset({date(2026, 3, 16)}))
    assert cal.is_working_day(date(2026, 3, 14))
    assert not cal.is_working_day(date(2026, 3, 16))


# --- other countries ------------------------------------------------------------------------

def test_de_public_holidays_are_closed() -> None:
    cal = BusinessCalendar(tz=BERLIN, country="DE")
    assert not cal.is_working_day(date(2026, 4, 6))  # Easter Monday
    assert not cal.is_working_day(date(2026, 12, 25))  # Christmas Day, a Friday
    assert cal.is_working_day(date(2026, 12, 24))  # Christmas Eve is not a public holiday
    assert cal.next_opening(datetime(2026, 12, 24, 18, 30, tzinfo=BERLIN)) == datetime(
        2026, 12, 28, 9, 0, tzinfo=BERLIN)


def test_de_subdivision_holiday() -> None:
    # Corpus Christi (2026-06-04, Thursday) is a holiday in Bavaria but not in Berlin.
    assert not BusinessCalendar(tz=BERLIN, country="DE", subdivision="BY").is_working_day(date(2026, 6, 4))
    assert BusinessCalendar(tz=BERLIN, country="DE", subdivision="BE").is_working_day(date(2026, 6, 4))


# --- DST ------------------------------------------------------------------------------------

def test_berlin_spring_forward_day_has_23_open_hours_around_the_clock() -> None:
    cal = BusinessCalendar(tz=BERLIN, weekdays=frozenset(range(7)), hours=(Span(0, 1440),))
    a = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
    b = datetime(2026, 3, 30, 0, 0, tzinfo=BERLIN)
    assert cal.business_seconds_between(a, b) == 23 * 3600
    assert cal.add_business_time(a, timedelta(hours=3)) == datetime(2026, 3, 29, 4, 0, tzinfo=BERLIN)


def test_new_york_fall_back_day_has_25_open_hours() -> None:
    cal = BusinessCalendar(tz=NEW_YORK, weekdays=frozenset(range(7)), hours=(Span(0, 1440),))
    a = datetime(2026, 11, 1, 0, 0, tzinfo=NEW_YORK)
    assert cal.business_seconds_between(a, a + timedelta(days=1)) == 25 * 3600


def test_office_hours_across_dst_weekend_are_wall_clock() -> None:
    # Friday before the US change (2026-03-08) to Monday: opening is 09:00 local both sides.
    cal = BusinessCalendar(tz=NEW_YORK, country="US")
    friday = datetime(2026, 3, 6, 17, 0, tzinfo=NEW_YORK)
    due = cal.add_business_time(friday, timedelta(hours=2))
    assert due == datetime(2026, 3, 9, 10, 0, tzinfo=NEW_YORK)
    assert cal.business_seconds_between(friday, due) == 2 * 3600


# --- arithmetic -----------------------------------------------------------------------------

def test_business_seconds_skip_nights_weekends_and_lunch() -> None:
    cal = china()
    # Friday 17:00 -> Monday 10:00: one hour on Friday, one on Monday.
    assert cal.business_seconds_between(sh(2026, 3, 13, 17, 0), sh(2026, 3, 16, 10, 0)) == 7200
    assert cal.business_seconds_between(sh(2026, 3, 16, 11, 0), sh(2026, 3, 16, 14, 0)) == 5400


def test_business_seconds_are_antisymmetric_and_zero_when_closed() -> None:
    cal = china()
    a, b = sh(2026, 3, 16, 10, 0), sh(2026, 3, 16, 11, 0)
    assert cal.business_seconds_between(b, a) == -3600
    assert cal.business_seconds_between(sh(2026, 3, 14, 9, 0), sh(2026, 3, 14, 17, 0)) == 0


def test_add_then_measure_round_trips() -> None:
    cal = china()
    start = sh(2026, 3, 13, 16, 20)
    end = cal.add_business_time(start, timedelta(hours=5, minutes=7))
    assert cal.business_seconds_between(start, end) == (5 * 60 + 7) * 60


def test_add_business_time_ending_at_closing_time() -> None:
    assert china().add_business_time(sh(2026, 3, 16, 17, 0), timedelta(hours=1)) == sh(2026, 3, 16, 18, 0)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        china().is_open(datetime(2026, 3, 16, 10, 0))


def test_results_are_in_team_time() -> None:
    utc_arrival = datetime(2026, 3, 16, 2, 0, tzinfo=ZoneInfo("UTC"))  # 10:00 in Shanghai
    assert china().add_business_time(utc_arrival, timedelta(minutes=5)).tzinfo == SHANGHAI


def test_a_calendar_that_never_opens_fails_loudly() -> None:
    cal = BusinessCalendar(tz=SHANGHAI, weekdays=frozenset())
    with pytest.raises(ValueError, match="no opening hours"):
        cal.next_opening(sh(2026, 3, 16, 10, 0))


# --- quiet hours ----------------------------------------------------------------------------

@pytest.mark.parametrize(("hour", "quiet"), [(21, False), (22, True), (0, True), (6, True), (7, False)])
def test_quiet_hours_wrap_midnight(hour: int, quiet: bool) -> None:
    assert china().in_quiet_hours(sh(2026, 3, 16, hour, 30 if hour == 6 else 0)) is quiet


def test_next_allowed_send_in_the_evening_is_tomorrow_morning() -> None:
    assert china().next_allowed_send(sh(2026, 3, 16, 23, 0)) == sh(2026, 3, 17, 7, 0)


def test_next_allowed_send_after_midnight_is_the_same_morning() -> None:
    assert china().next_allowed_send(sh(2026, 3, 17, 1, 0)) == sh(2026, 3, 17, 7, 0)


def test_next_allowed_send_outside_quiet_hours_is_now() -> None:
    assert china().next_allowed_send(sh(2026, 3, 17, 12, 0)) == sh(2026, 3, 17, 12, 0)


def test_quiet_hours_end_on_dst_night_is_local_seven() -> None:
    cal = BusinessCalendar(tz=BERLIN)
    t = datetime(2026, 3, 28, 23, 0, tzinfo=BERLIN)
    allowed = cal.next_allowed_send(t)
    assert (allowed.hour, allowed.date()) == (7, date(2026, 3, 29))
    # Same-tzinfo subtraction is wall time in Python; in UTC the night is an hour shorter.
    utc = ZoneInfo("UTC")
    assert (allowed.astimezone(utc) - t.astimezone(utc)) == timedelta(hours=7)


def test_no_quiet_hours() -> None:
    assert not china(quiet_hours=None).in_quiet_hours(sh(2026, 3, 17, 3, 0))


# --- parsing --------------------------------------------------------------------------------

def test_parse_spans() -> None:
    assert parse_spans(["13:30-18:00", "09:00-12:00"]) == LUNCH_BREAK
    assert parse_span("00:00-24:00") == Span(0, 1440)
    with pytest.raises(ValueError, match="overlap"):
        parse_spans(["09:00-12:00", "11:00-13:00"])
    with pytest.raises(ValueError, match="midnight"):
        parse_spans(["18:00-02:00"])


@pytest.mark.parametrize(("text", "expected"), [
    ("5m", timedelta(minutes=5)), ("2h", timedelta(hours=2)), ("1d", timedelta(days=1)),
    ("1h30m", timedelta(minutes=90)), ("45s", timedelta(seconds=45)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["5", "5 minutes", "", "m5", "-5m"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="like 5m, 2h, 1d"):
        parse_duration(text)


def test_calendar_from_config_defaults() -> None:
    cal, problems = calendar_from_config({}, "config.toml", "teams.china.hours.")
    assert problems == []
    assert cal.hours == LUNCH_BREAK
    assert cal.weekdays == frozenset(range(5))
    assert cal.grace == timedelta(minutes=15)
    assert cal.quiet_hours == Span(22 * 60, 7 * 60)


def test_calendar_from_config_reads_everything() -> None:
    raw = {"timezone": "Europe/Berlin", "weekdays": ["mon", "tue", "wed", "thu"],
           "hours": ["08:00-16:00"], "country": "de", "subdivision": "BY",
           "extra_holidays": [date(2026, 12, 31)], "extra_workdays": ["2026-12-27"],
           "quiet_hours": "", "grace": "30m"}
    cal, problems = calendar_from_config(raw, "config.toml", "teams.europe.hours.")
    assert problems == []
    assert (cal.tz, cal.country, cal.subdivision) == (BERLIN, "DE", "BY")
    assert cal.extra_workdays == frozenset({date(2026, 12, 27)})
    assert cal.quiet_hours is None and cal.grace == timedelta(minutes=30)


def test_calendar_from_config_reports_every_problem_with_its_key() -> None:
    raw = {"timezone": "Mars/Olympus", "weekdays": ["mon", "funday"], "hours": ["9-5"],
           "country": "XX", "extra_holidays": ["31/12/2026"], "grace": "15", "colour": "red"}
    _, problems = calendar_from_config(raw, "config.toml", "teams.china.hours.")
    keys = {p.key for p in problems}
    assert keys == {f"teams.china.hours.{k}" for k in
                    ("timezone", "weekdays", "hours", "country", "extra_holidays", "grace", "colour")}
    assert all(p.file == "config.toml" for p in problems)
    grace = next(p for p in problems if p.key.endswith("grace"))
    assert "like 5m, 2h, 1d" in grace.message


def test_cn_years_beyond_chinese_calendar_fall_back_to_the_holidays_library() -> None:
    # chinese-calendar only has years already published by the State Council (2026 here).
    cal = china()
    assert not cal.is_working_day(date(2030, 1, 1))  # New Year's Day
    assert cal.is_working_day(date(2030, 1, 2))
