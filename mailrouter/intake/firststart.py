"""First start on a mailbox with history: which messages to adopt and which to route.

Pure decisions, no IMAP and no database: the caller (the mailbox loop) supplies each message's
flags and INTERNALDATE and the mailbox's `backfill` setting. Mail already in a folder the
database has never seen is *adopted* (recorded, left where it is, never forwarded, never on the
reply clock) unless it is a recent inquiry nobody answered: unread (no \\Seen), not \\Answered,
and arrived inside the backfill window. Those are routed as if they had just arrived, so a
buyer who wrote an hour before the installation still gets a rep.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable

from mailrouter.sla.durations import parse_duration

DEFAULT_BACKFILL = "24h"
BACKFILL_HINT = 'must be "0" (route nothing), a duration like "12h" or "3d", or a date like "2026-12-01"'
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Backfill:
    """How far back a first start routes unanswered mail: a window, a fixed date, or nothing."""

    window: timedelta | None = None  # "24h": mail younger than this at the first start
    since: date | None = None        # "2026-12-01": mail from that day (server's INTERNALDATE, UTC) on
    text: str = "0"                  # as configured, so the log line says what the sysadmin wrote

    def cutoff(self, now: datetime) -> datetime | None:
        """The oldest INTERNALDATE that is routed; None when nothing is."""
        if self.window is not None:
            return now - self.window
        if self.since is not None:
            return datetime.combine(self.since, time.min, tzinfo=timezone.utc)
        return None

    def describe(self) -> str:
        """For the first-start log line: "the last 24h", "since 2026-12-01", "none"."""
        if self.window is not None:
            return f"the last {self.text}"
        return f"since {self.since.isoformat()}" if self.since is not None else "none"


def parse_backfill(text: object) -> Backfill:
    """"0" -> route nothing; "3d"/"12h" -> a window; "2026-12-01" -> a date. ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(BACKFILL_HINT)
    cleaned = text.strip().lower()
    if cleaned in ("0", "none", "off"):
        return Backfill()
    if _DATE.fullmatch(cleaned):
        try:
            return Backfill(since=date.fromisoformat(cleaned), text=cleaned)
        except ValueError:
            raise ValueError(f"{text!r} is not a calendar date; {BACKFILL_HINT}") from None
    try:
        window = parse_duration(cleaned)
    except ValueError:
        raise ValueError(BACKFILL_HINT) from None
    return Backfill(window=window, text=cleaned) if window > timedelta(0) else Backfill()


@dataclass(frozen=True)
class Found:
    """One message already in the folder at the first start, as the IMAP adapter reports it."""

    uid: int
    flags: frozenset[str]          # e.g. {"\\Seen", "\\Answered"}; compared case-insensitively
    internal_date: datetime | None  # None when the server sent none: treated as old (adopted)


@dataclass(frozen=True)
class FirstStartPlan:
    adopt: tuple[int, ...]
    route: tuple[int, ...]

    def summary(self, mailbox: str, backfill: Backfill) -> str:
        """The one log line of a first start."""
        if backfill.cutoff(datetime.now(timezone.utc)) is None:
            return f"{mailbox}: first start: adopted {len(self.adopt)}, routing none (backfill 0)"
        return (f"{mailbox}: first start: adopted {len(self.adopt)}, "
                f"routing {len(self.route)} unread from {backfill.describe()}")


def _unanswered(flags: frozenset[str]) -> bool:
    lowered = {f.lower() for f in flags}
    return "\\seen" not in lowered and "\\answered" not in lowered


def plan_first_start(found: Iterable[Found], backfill: Backfill, now: datetime) -> FirstStartPlan:
    """Split what a never-seen folder holds into adopted and routed UIDs (both in UID order)."""
    cutoff = backfill.cutoff(now)
    adopt: list[int] = []
    route: list[int] = []
    for msg in sorted(found, key=lambda m: m.uid):
        recent = cutoff is not None and msg.internal_date is not None and msg.internal_date >= cutoff
        (route if recent and _unanswered(msg.flags) else adopt).append(msg.uid)
    return FirstStartPlan(adopt=tuple(adopt), route=tuple(route))


def adopt_history(found: Iterable[Found], first_start: datetime) -> tuple[int, ...]:
    """After a UIDVALIDITY change of a known folder: the UIDs that arrived before its first start.
    They were adopted then (or routed and filed away), so they are adopted again, never routed.
    Mail from after the first start goes on to admission, which recognises unfinished rows by
    their bytes. A message without INTERNALDATE is history too: routing it twice is the worse error."""
    return tuple(sorted(m.uid for m in found if m.internal_date is None or m.internal_date < first_start))
