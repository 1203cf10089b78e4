"""Timed work on APScheduler: digests, ladder sweeps, gauges and housekeeping.

Each job only *starts* work that is idempotent and recorded in the database (a digest is
queued once per supervisor and period, a ladder step fires once), so a job that runs late,
twice, or after a restart does no harm. Jobs run one at a time on the scheduler's own thread;
the ladder sweep needs a mailbox's IMAP connection, so its job only raises a flag that the
mailbox loop answers on its next turn.

Not on the scheduler, on purpose:
- spool clean-up (`Spool.remove_unreferenced`) runs once at start-up, before any mailbox
  thread spools: run later, it could remove a file whose row is not yet committed;
- the Assign/ folder check belongs to each mailbox's loop, on that mailbox's connection.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from mailrouter.config.schema import Config
from mailrouter.reports.schedule import LATE_LIMIT, Schedule
from mailrouter.store import state_write_failure

log = logging.getLogger("mailrouter.timers")
GAUGE_INTERVAL = 30.0  # seconds between refreshes of the database-derived gauges
HOUSEKEEPING_AT = (3, 30)  # local time: a quiet hour for the database's own upkeep
CRON_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class TimedWork:
    """What the daemon does when a job fires; each callable takes no arguments."""

    digests: Callable[[], object]
    sweep: Callable[[], object]
    gauges: Callable[[], object]
    housekeeping: Callable[[], object]


@dataclass(frozen=True)
class Job:
    id: str
    trigger: BaseTrigger
    run: Callable[[], object]
    grace: float  # seconds a missed run may still start late; later than that it is skipped
    at_start: bool = False  # also run once right away


def digest_trigger(schedule: Schedule, tz: ZoneInfo) -> CronTrigger:
    """A digest's moment in the company's time zone: "08:30" daily or "mon 08:30" weekly."""
    weekday = None if schedule.weekday is None else CRON_WEEKDAYS[schedule.weekday]
    return CronTrigger(day_of_week=weekday, hour=schedule.at.hour, minute=schedule.at.minute,
                       second=schedule.at.second, timezone=tz)


def timed_jobs(config: Config, work: TimedWork) -> list[Job]:
    """Every job this config asks for, with the trigger that says when."""
    tz = config.timezone
    jobs = [Job(f"digest-{s.kind}", digest_trigger(s, tz), work.digests, LATE_LIMIT.total_seconds(),
                # catches up on a digest that fell due within LATE_LIMIT while the daemon was down
                at_start=True)
            for s in config.digest.schedules]
    if config.sla.enabled:
        jobs.append(Job("ladder-sweep", IntervalTrigger(seconds=config.sla.sweep_interval, timezone=tz),
                        work.sweep, config.sla.sweep_interval, at_start=True))
    jobs.append(Job("gauges", IntervalTrigger(seconds=GAUGE_INTERVAL, timezone=tz), work.gauges,
                    GAUGE_INTERVAL))
    hour, minute = HOUSEKEEPING_AT
    jobs.append(Job("housekeeping", CronTrigger(hour=hour, minute=minute, timezone=tz), work.housekeeping,
                    timedelta(hours=1).total_seconds()))
    return jobs


class Timers:
    """The daemon's scheduler: built from a config, rebuilt on reload."""

    def __init__(self, work: TimedWork):
        self.work = work
        self._scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(1)},
                                              job_defaults={"coalesce": True, "max_instances": 1})

    def start(self, config: Config) -> None:
        self._scheduler.configure(timezone=config.timezone)
        self._add_jobs(config)
        self._scheduler.start()
        log.info("timed work: %s", self.describe())

    def reschedule(self, config: Config) -> None:
        """Replace every job with the new config's (times, time zone, sweep interval)."""
        self._scheduler.remove_all_jobs()
        self._add_jobs(config)
        log.info("timed work rescheduled: %s", self.describe())

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def next_runs(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    def describe(self) -> str:
        return ", ".join(f"{job_id} next {at:%Y-%m-%d %H:%M:%S %Z}" if at else f"{job_id} paused"
                         for job_id, at in sorted(self.next_runs().items()))

    def _add_jobs(self, config: Config) -> None:
        now = datetime.now(config.timezone)
        for job in timed_jobs(config, self.work):
            self._scheduler.add_job(_logged(job.id, job.run), job.trigger, id=job.id, name=job.id,
                                    misfire_grace_time=max(1, int(job.grace)),
                                    next_run_time=now if job.at_start else job.trigger.get_next_fire_time(None, now))


def _logged(job_id: str, run: Callable[[], object]) -> Callable[[], None]:
    """A job that fails logs one line and runs again at its next time; the daemon goes on."""
    def job() -> None:
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - timed work must never stop the scheduler
            if state_write_failure(exc) is None:
                log.exception("timed job %s failed; it runs again at its next time", job_id)
            else:  # a failing state disk: the mailbox loop says so, once, in one line
                log.debug("timed job %s failed; it runs again at its next time: %s", job_id, exc)
    return job
