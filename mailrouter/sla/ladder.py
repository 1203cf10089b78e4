"""Escalation ladders: what to do, and when, while an inquiry waits for its first reply.

Pure. The caller records which steps it has done (by `Step.key`) and asks `due_steps` again
on every sweep; since the answer depends only on the record and the clock, a restart neither
repeats a step nor skips one.
"""
from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from mailrouter.sla.hours import BusinessCalendar
from mailrouter.config.reader import Problem, Reader, format_duration


class StepKind(str, enum.Enum):
    REMIND = "remind"  # nudge the rep
    ESCALATE = "escalate"  # tell the rep's supervisor
    REASSIGN = "reassign"  # give it to another available team member
    POOL = "pool"  # take it from the rep, file it in a folder for anyone (or the manager)


# Steps that end the current assignment: nothing after them applies to this rep.
TERMINAL = frozenset({StepKind.REASSIGN, StepKind.POOL})
POOL_FOLDER = "pool"
MANAGER_FOLDER = "manager"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    after: timedelta
    business_time: bool = True
    folder: str = ""  # POOL only: "pool" or "manager" (keys of the folders config)
    replaces: StepKind | None = None  # set on a POOL standing in for an exhausted REASSIGN

    @property
    def key(self) -> str:
        """Stable name to record as done; survives reordering of the config, unlike an index.

        A stand-in keeps the key of the step it replaces, so recording it marks that step done.
        """
        clock = "" if self.business_time else "wall:"
        return f"{(self.replaces or self.kind).value}@{clock}{format_duration(self.after)}"


@dataclass(frozen=True)
class Ladder:
    name: str
    steps: tuple[Step, ...]
    max_reassignments: int = 2
    exhausted_folder: str = MANAGER_FOLDER  # where a REASSIGN goes once the limit is reached


DEFAULT_LADDER = Ladder("default", (
    Step(StepKind.REMIND, timedelta(minutes=5)),
    Step(StepKind.ESCALATE, timedelta(minutes=15)),
    Step(StepKind.REASSIGN, timedelta(minutes=30)),
))
# Follow-ups that may wait a day or two: wall time, so a weekend counts, but never at night.
COLD_LADDER = Ladder("cold", (
    Step(StepKind.REMIND, timedelta(hours=24), business_time=False),
    Step(StepKind.ESCALATE, timedelta(hours=48), business_time=False),
))


@dataclass(frozen=True)
class AssignmentSnapshot:
    """What the ladder needs to know of one assignment, read from the store."""

    rep: str
    started_at: datetime  # arrival for the first rep, the reassignment time for later ones
    done: frozenset[str] = frozenset()  # Step.key of steps already carried out
    replied_at: datetime | None = None
    reassignments: int = 0  # how many times this inquiry has been reassigned so far
    previous_reps: tuple[str, ...] = ()


def step_time(step: Step, ladder: Ladder, snap: AssignmentSnapshot, calendar: BusinessCalendar) -> datetime:
    """When a step falls due, before quiet hours are applied.

    Business-time steps hang off the SLA due time of the ladder's first business step, so an
    inquiry from Friday night gets its reminder at Monday's opening plus grace and the later
    steps keep their spacing; in business hours this is simply started_at + after.
    """
    if not step.business_time:
        return calendar.local(snap.started_at.astimezone(timezone.utc) + step.after)
    first = min(s.after for s in ladder.steps if s.business_time)
    return calendar.add_business_time(calendar.due_at(snap.started_at, first), step.after - first)


def _effective(step: Step, ladder: Ladder, snap: AssignmentSnapshot) -> Step:
    if step.kind is StepKind.REASSIGN and snap.reassignments >= ladder.max_reassignments:
        return replace(step, kind=StepKind.POOL, folder=ladder.exhausted_folder, replaces=step.kind)
    return step


def _finished(snap: AssignmentSnapshot, ladder: Ladder) -> bool:
    """A reply was seen, or a terminal step already took the inquiry from this rep."""
    return snap.replied_at is not None or any(
        s.key in snap.done for s in ladder.steps if s.kind in TERMINAL)


def due_steps(snap: AssignmentSnapshot, ladder: Ladder, calendar: BusinessCalendar,
              now: datetime) -> list[Step]:
    """Steps to carry out now, in order; record each one's `key` once it is carried out.

    Nothing during quiet hours; nothing once a reply is seen; nothing after a terminal step.
    A REASSIGN past the ladder's limit comes back as a POOL to the exhausted folder (same key).
    """
    if _finished(snap, ladder) or calendar.in_quiet_hours(now):
        return []
    result: list[Step] = []
    for step in ladder.steps:
        if step.key in snap.done:
            continue
        if step_time(step, ladder, snap, calendar) <= now:
            result.append(_effective(step, ladder, snap))
            if step.kind in TERMINAL:
                break
    return result


def first_due(ladder: Ladder, calendar: BusinessCalendar, started_at: datetime, rep: str = "") -> datetime | None:
    """When an assignment started at `started_at` is due for a first reply: its ladder's first
    step (None for a ladder without steps). Every assignment has one, reassigned ones included,
    so overdue lists and SLA figures see them."""
    if not ladder.steps:
        return None
    return step_time(ladder.steps[0], ladder, AssignmentSnapshot(rep, started_at), calendar)


def latest_only(steps: Sequence[Step]) -> tuple[Step | None, list[Step]]:
    """(the step to carry out, the ones to record as skipped) among steps due together.

    Several steps fall due at once only when no sweep ran for a while (downtime, a long
    backlog); a reminder and an escalation sent in the same second as the reassignment only
    add noise, so the last one, which says what should be true now, is the one carried out.
    """
    if not steps:
        return None, []
    return steps[-1], list(steps[:-1])


def next_step_at(snap: AssignmentSnapshot, ladder: Ladder, calendar: BusinessCalendar) -> datetime | None:
    """When the sweep should next look at this assignment (None: the ladder is finished)."""
    if _finished(snap, ladder):
        return None
    for step in ladder.steps:
        if step.key in snap.done:
            continue
        return calendar.next_allowed_send(step_time(step, ladder, snap, calendar))
    return None


def pick_reassignee(members: Sequence[str], available: Collection[str], current: str,
                    previous: Collection[str], open_counts: Mapping[str, int]) -> str | None:
    """The available member with the fewest open inquiries who has never held this one.

    Someone who already let it go late will not do better the second time, so previous reps
    are out as well as the current one; None means nobody is left and the caller pools it.
    Ties go to the earlier member in the team's order, so the choice is reproducible.
    """
    excluded = {current, *previous}
    candidates = [m for m in members if m in available and m not in excluded]
    if not candidates:
        return None
    return min(candidates, key=lambda m: (open_counts.get(m, 0), members.index(m)))


LADDER_KEYS = {"steps", "max_reassignments", "exhausted", "business_time"}
STEP_KEYS = {"kind", "after", "business_time", "folder"}


def ladder_from_config(raw: dict[str, Any], file: str, key_prefix: str) -> tuple[Ladder, list[Problem]]:
    """Read one `[sla.ladders.NAME]` table; key_prefix is e.g. "sla.ladders.cold.".

    With problems, the ladder returned is DEFAULT_LADDER, only so the caller can go on
    collecting problems elsewhere before refusing to start.
    """
    c = Reader(file, prefix=key_prefix)
    c.unknown_keys(raw, LADDER_KEYS)
    name = key_prefix.rstrip(".").rsplit(".", 1)[-1] or "ladder"
    default_business = c.typed(raw, "business_time", bool, True)
    steps = _steps(c, raw.get("steps"), default_business)
    max_reassign = c.typed(raw, "max_reassignments", int, 2)
    if max_reassign < 0:
        c.add("max_reassignments", "must be 0 or more")
        max_reassign = 0
    exhausted = c.typed(raw, "exhausted", str, MANAGER_FOLDER)
    if exhausted not in (MANAGER_FOLDER, POOL_FOLDER):
        c.add("exhausted", f"must be {MANAGER_FOLDER} or {POOL_FOLDER}, not {exhausted!r}")
        exhausted = MANAGER_FOLDER
    _check_order(c, steps)
    if c.problems:
        return DEFAULT_LADDER, c.problems
    return Ladder(name, tuple(steps), max_reassign, exhausted), []


def _steps(c: Reader, items: Any, default_business: bool) -> list[Step]:
    if not isinstance(items, list) or not items:
        c.add("steps", "a ladder needs a list of steps, e.g. [{ kind = \"remind\", after = \"5m\" }]")
        return []
    steps = []
    for i, item in enumerate(items):
        where = f"steps[{i}]."
        if not isinstance(item, dict):
            c.add(where[:-1], "must be a table like { kind = \"remind\", after = \"5m\" }")
            continue
        step = _step(c, item, where, default_business)
        if step is not None:
            steps.append(step)
    return steps


def _step(c: Reader, item: dict[str, Any], where: str, default_business: bool) -> Step | None:
    c.unknown_keys(item, STEP_KEYS, where)
    kinds = ", ".join(k.value for k in StepKind)
    try:
        kind = StepKind(item.get("kind"))
    except ValueError:
        c.add(where + "kind", f"must be one of {kinds}, not {item.get('kind')!r}")
        return None
    if "after" not in item:
        c.add(where + "after", "is required (like 5m, 2h, 1d)")
        return None
    after = c.duration(item, "after", timedelta(-1), where)
    business = c.typed(item, "business_time", bool, default_business, where)
    if after < timedelta(0):
        return None
    if business and after >= timedelta(days=1) and "d" in str(item["after"]).lower():
        # A business "day" would be 24 hours of open time, about three working days.
        c.add(where + "after", "days of business time are ambiguous: give open hours "
              "(8h is about one working day) or set business_time = false")
        return None
    folder = c.typed(item, "folder", str, POOL_FOLDER if kind is StepKind.POOL else "", where)
    if folder and kind is not StepKind.POOL:
        c.add(where + "folder", "only pool steps take a folder")
    elif kind is StepKind.POOL and folder not in (POOL_FOLDER, MANAGER_FOLDER):
        c.add(where + "folder", f"must be {POOL_FOLDER} or {MANAGER_FOLDER}, not {folder!r}")
    return Step(kind, after, business, folder if kind is StepKind.POOL else "")


def _check_order(c: Reader, steps: list[Step]) -> None:
    seen: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.key in seen:
            c.add(f"steps[{i}]", f"same step as steps[{seen[step.key]}] ({step.key})")
        seen[step.key] = i
        if step.kind in TERMINAL and i != len(steps) - 1:
            c.add(f"steps[{i}].kind", f"{step.kind.value} ends the assignment, so it must be the last step")
    for clock in (True, False):
        afters = [s.after for s in steps if s.business_time is clock]
        if afters != sorted(afters):
            c.add("steps", "steps must be in order of their after times")
            return
