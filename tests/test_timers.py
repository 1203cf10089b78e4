"""Timed work on APScheduler: what runs when, in the company's time zone."""
from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, time
from zoneinfo import ZoneInfo

from factories import example_config

from mailrouter.reports.schedule import Schedule, parse_schedule
from mailrouter.runtime.timers import TimedWork, Timers, digest_trigger, timed_jobs

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _work(**calls) -> TimedWork:
    noop = lambda: None  # noqa: E731
    return TimedWork(**{"digests": noop, "sweep": noop, "gauges": noop, "housekeeping": noop, **calls})


def test_a_daily_digest_fires_at_its_local_time_not_utc():
    trigger = digest_trigger(parse_schedule("daily", "08:30"), SHANGHAI)
    after = datetime(2026, 12, 4, 1, 0, tzinfo=ZoneInfo("UTC"))  # 09:00 in Shanghai: today's is past
    assert trigger.get_next_fire_time(None, after) == datetime(2026, 12, 5, 8, 30, tzinfo=SHANGHAI)


def test_a_weekly_digest_fires_on_its_weekday():
    trigger = digest_trigger(parse_schedule("weekly", "mon 08:30"), SHANGHAI)
    friday = datetime(2026, 12, 4, 12, 0, tzinfo=SHANGHAI)
    assert trigger.get_next_fire_time(None, friday) == datetime(2026, 12, 7, 8, 30, tzinfo=SHANGHAI)


def test_jobs_follow_the_config():
    config = example_config()
    config = replace(config, digest=replace(config.digest, schedules=(
        Schedule("daily", time(8, 30)), Schedule("weekly", time(9, 0), 0))))
    jobs = {job.id: job for job in timed_jobs(config, _work())}
    assert set(jobs) == {"digest-daily", "digest-weekly", "ladder-sweep", "gauges", "housekeeping"}
    assert jobs["ladder-sweep"].trigger.interval.total_seconds() == config.sla.sweep_interval
    off = replace(config, sla=replace(config.sla, enabled=False), digest=replace(config.digest, schedules=()))
    assert {job.id for job in timed_jobs(off, _work())} == {"gauges", "housekeeping"}


def test_the_scheduler_runs_the_sweep_at_once_and_a_failing_job_does_not_stop_it():
    swept, digested = threading.Event(), threading.Event()

    def broken_digest():
        digested.set()
        raise RuntimeError("database is locked")

    config = example_config()
    config = replace(config, digest=replace(config.digest, schedules=(Schedule("daily", time(8, 30)),)),
                     sla=replace(config.sla, sweep_interval=0.5))
    timers = Timers(_work(sweep=swept.set, digests=broken_digest))
    timers.start(config)
    try:
        assert digested.wait(10) and swept.wait(10)  # both run once at start-up
        swept.clear()
        assert swept.wait(10)  # and the sweep again at its interval
    finally:
        timers.shutdown()


def test_reload_replaces_the_jobs():
    config = example_config()
    digested = threading.Event()
    timers = Timers(_work(digests=digested.set))
    timers.start(replace(config, digest=replace(config.digest, schedules=())))
    try:
        assert "digest-daily" not in timers.next_runs()
        daily = replace(config, digest=replace(config.digest, schedules=(Schedule("daily", time(7, 0)),)))
        timers.reschedule(daily)
        assert "digest-weekly" not in timers.next_runs()
        assert digested.wait(10)  # the catch-up run; then the trigger's own time
        for _ in range(100):
            next_daily = timers.next_runs()["digest-daily"]
            if next_daily and next_daily.time() == time(7, 0):
                break
            threading.Event().wait(0.05)
        assert next_daily is not None and next_daily.time() == time(7, 0)
        assert next_daily.tzinfo is not None and next_daily.utcoffset().total_seconds() == 8 * 3600
    finally:
        timers.shutdown()
