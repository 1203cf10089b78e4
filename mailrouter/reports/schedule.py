"""Scheduled digests: daily and weekly figures to each supervisor, for their teams only.

Each schedule is a job on the daemon's scheduler (runtime/timers.py); each (supervisor, kind, period) is
recorded when queued, so a restart never sends one twice. A digest missed by more than an
hour (the daemon was down) is skipped rather than sent late. Daily digests follow the business
calendar of the supervisor's teams (sla/hours.py): none on a day off (weekend, holiday; a 调休
Saturday is a working day), and the first one after days off covers them too.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mailrouter.config.load import parse_schedule  # noqa: F401  (read with [digest]; re-exported)
from mailrouter.config.schema import Config, Schedule
from mailrouter.act.outgoing import notice_sender, queue_notice
from mailrouter.reports.digest import digest_for_supervisor
from mailrouter.reports.figures import Period
from mailrouter.sla.hours import BusinessCalendar
from mailrouter import store
from mailrouter.store import DigestSentRow

log = logging.getLogger("mailrouter.digest")
LATE_LIMIT = timedelta(hours=1)


def last_occurrence(schedule: Schedule, now: datetime, tz) -> datetime:
    """The most recent scheduled moment at or before `now`, in `tz`."""
    local = now.astimezone(tz)
    at = datetime.combine(local.date(), schedule.at, tzinfo=tz)
    if schedule.weekday is not None:
        at -= timedelta(days=(local.weekday() - schedule.weekday) % 7)
    if at > local:
        at -= timedelta(days=7 if schedule.weekday is not None else 1)
    return at


# A daily digest looks back at most this far for the previous working day (Spring Festival
# is about a week; a calendar with no working days must not loop).
MAX_DAYS_OFF = 14


def period_of(schedule: Schedule, at: datetime, calendar: BusinessCalendar | None = None) -> Period:
    """The weeks before a weekly digest; for a daily one, since the previous working day's."""
    if schedule.kind == "weekly":
        return Period(at - timedelta(days=7), at)
    since = at - timedelta(days=1)
    for _ in range(MAX_DAYS_OFF):
        if calendar is None or calendar.is_working_day(since.date()):
            break
        since -= timedelta(days=1)
    return Period(since, at)


def digest_calendar(config: Config, supervisor: str) -> BusinessCalendar:
    """The calendar of the first team (by id) the supervisor leads: whose working days count."""
    teams = sorted(t.id for t in config.teams.values() if t.supervisor == supervisor)
    return config.sla.calendar_for(teams[0] if teams else None)


def is_digest_day(schedule: Schedule, at: datetime, calendar: BusinessCalendar) -> bool:
    """Weekly digests always go; daily ones only on the team's working days."""
    return schedule.kind == "weekly" or calendar.is_working_day(at.date())


def supervisors(config: Config) -> list[str]:
    return sorted({t.supervisor for t in config.teams.values() if t.supervisor})


def queue_due_digests(session: Session, config: Config, now: datetime) -> int:
    """Queue every digest due now and not yet sent; return how many. Several instances may
    run this at once: they take turns (store.hold_digest_lock), so each digest is queued once."""
    store.begin_writing(session)
    store.hold_digest_lock(session)
    queued = 0
    for schedule in config.digest.schedules:
        at = last_occurrence(schedule, now, config.timezone)
        if now - at > LATE_LIMIT:
            continue
        for supervisor in supervisors(config):
            calendar = digest_calendar(config, supervisor)
            if not is_digest_day(schedule, at, calendar):
                continue
            if session.get(DigestSentRow, (supervisor, schedule.kind, at)) is None:
                _queue(session, config, supervisor, schedule, at, now, calendar)
                queued += 1
    return queued


def _queue(session: Session, config: Config, supervisor: str, schedule: Schedule, at: datetime,
           now: datetime, calendar: BusinessCalendar | None = None) -> None:
    subject, text, html = digest_for_supervisor(session, config, supervisor, period_of(schedule, at, calendar),
                                                now)
    rep, domain = config.reps[supervisor], notice_sender(config).address.rpartition("@")[2]
    session.add(DigestSentRow(supervisor=supervisor, kind=schedule.kind, period_end=at, queued_at=now))
    queue_notice(session, config, rep.email, subject, text,
                 f"<mr.digest.{schedule.kind}.{at:%Y%m%d%H%M}.{supervisor}@{domain}>", now,
                 kind=f"digest; {schedule.kind}", html=html)
    log.info("%s digest for %s (%s) queued", schedule.kind, supervisor, rep.email)
