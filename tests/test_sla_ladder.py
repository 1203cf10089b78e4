"""Escalation ladders: steps at moved times (no sleeping), never repeated, stopped by a reply."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailrouter.sla.hours import BusinessCalendar, Span
from mailrouter.sla.ladder import (
    COLD_LADDER, DEFAULT_LADDER, AssignmentSnapshot, Ladder, Step, StepKind, due_steps,
    latest_only, ladder_from_config, next_step_at, pick_reassignee,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CAL = BusinessCalendar(tz=SHANGHAI, country="CN",
                       hours=(Span(9 * 60, 12 * 60), Span(13 * 60 + 30, 18 * 60)))


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def keys(steps: list[Step]) -> list[str]:
    return [s.key for s in steps]


def run_clock(snap: AssignmentSnapshot, ladder: Ladder, start: datetime, minutes: int) -> list[tuple[datetime, str]]:
    """Move the clock a minute at a time, recording steps as a sweep would."""
    fired = []
    for m in range(minutes):
        now = start + timedelta(minutes=m)
        for step in due_steps(snap, ladder, CAL, now):
            fired.append((now, step.key))
            snap = replace(snap, done=snap.done | {step.key})
    return fired


def test_default_ladder_in_business_hours() -> None:
    start = sh(2026, 3, 16, 10, 0)
    fired = run_clock(AssignmentSnapshot("li", start), DEFAULT_LADDER, start, 120)
    assert fired == [(sh(2026, 3, 16, 10, 5), "remind@5m"), (sh(2026, 3, 16, 10, 15), "escalate@15m"),
                     (sh(2026, 3, 16, 10, 30), "reassign@30m")]


def test_friday_night_ladder_starts_monday_at_opening_plus_grace() -> None:
    start = sh(2026, 3, 13, 23, 0)
    fired = run_clock(AssignmentSnapshot("li", start), DEFAULT_LADDER, start, 3 * 24 * 60)
    assert [t for t, _ in fired] == [sh(2026, 3, 16, 9, 15), sh(2026, 3, 16, 9, 25), sh(2026, 3, 16, 9, 40)]


def test_steps_straddle_lunch_in_business_time() -> None:
    start = sh(2026, 3, 16, 11, 50)
    fired = dict((k, t) for t, k in run_clock(AssignmentSnapshot("li", start), DEFAULT_LADDER, start, 180))
    assert fired["remind@5m"] == sh(2026, 3, 16, 11, 55)
    assert fired["escalate@15m"] == sh(2026, 3, 16, 13, 35)


def test_nothing_before_the_first_step() -> None:
    start = sh(2026, 3, 16, 10, 0)
    assert due_steps(AssignmentSnapshot("li", start), DEFAULT_LADDER, CAL, start + timedelta(minutes=4)) == []


def test_a_done_step_is_never_returned_again() -> None:
    start = sh(2026, 3, 16, 10, 0)
    snap = AssignmentSnapshot("li", start, done=frozenset({"remind@5m"}))
    assert keys(due_steps(snap, DEFAULT_LADDER, CAL, start + timedelta(minutes=10))) == []


def test_after_a_restart_overdue_steps_all_come_once_in_order() -> None:
    # The daemon was down from 10:03 to 10:20: the reminder and the escalation are both due.
    start = sh(2026, 3, 16, 10, 0)
    snap = AssignmentSnapshot("li", start)
    assert keys(due_steps(snap, DEFAULT_LADDER, CAL, sh(2026, 3, 16, 10, 20))) == ["remind@5m", "escalate@15m"]


def test_after_a_restart_only_the_latest_due_step_is_carried_out() -> None:
    start = sh(2026, 3, 16, 10, 0)
    due = due_steps(AssignmentSnapshot("li", start), DEFAULT_LADDER, CAL, sh(2026, 3, 16, 11, 0))
    take, skipped = latest_only(due)
    assert (take.key, keys(skipped)) == ("reassign@30m", ["remind@5m", "escalate@15m"])
    assert latest_only([]) == (None, [])


def test_nothing_after_a_terminal_step() -> None:
    ladder = Ladder("x", (Step(StepKind.REMIND, timedelta(minutes=5)), Step(StepKind.POOL, timedelta(minutes=10), folder="pool")))
    start = sh(2026, 3, 16, 10, 0)
    snap = AssignmentSnapshot("li", start, done=frozenset({"pool@10m"}))
    assert due_steps(snap, ladder, CAL, start + timedelta(hours=1)) == []
    assert next_step_at(snap, ladder, CAL) is None


def test_a_reply_stops_the_ladder() -> None:
    start = sh(2026, 3, 16, 10, 0)
    snap = AssignmentSnapshot("li", start, replied_at=start + timedelta(minutes=3))
    assert due_steps(snap, DEFAULT_LADDER, CAL, start + timedelta(hours=2)) == []
    assert next_step_at(snap, DEFAULT_LADDER, CAL) is None


def test_reply_after_the_reminder_stops_the_rest() -> None:
    start = sh(2026, 3, 16, 10, 0)
    snap = AssignmentSnapshot("li", start, done=frozenset({"remind@5m"}), replied_at=start + timedelta(minutes=7))
    assert due_steps(snap, DEFAULT_LADDER, CAL, start + timedelta(hours=2)) == []


def test_reassign_past_the_limit_becomes_the_managers_folder() -> None:
    start = sh(2026, 3, 16, 10, 0)
    snap = AssignmentSnapshot("zhang", start, done=frozenset({"remind@5m", "escalate@15m"}), reassignments=2)
    (step,) = due_steps(snap, DEFAULT_LADDER, CAL, start + timedelta(minutes=30))
    assert (step.kind, step.folder) == (StepKind.POOL, "manager")
    assert step.key == "reassign@30m"  # recording it marks the reassign step done
    assert due_steps(replace(snap, done=snap.done | {step.key}), DEFAULT_LADDER, CAL,
                     start + timedelta(hours=3)) == []


def test_within_the_limit_reassign_stays_reassign() -> None:
    start = sh(2026, 3, 16, 10, 0)
    snap = AssignmentSnapshot("zhang", start, done=frozenset({"remind@5m", "escalate@15m"}), reassignments=1)
    assert [s.kind for s in due_steps(snap, DEFAULT_LADDER, CAL, start + timedelta(minutes=30))] == [StepKind.REASSIGN]


def test_no_step_during_quiet_hours_then_at_seven() -> None:
    # Cold ladder in wall time: arrival Monday 22:30, reminder 24h later falls in quiet hours.
    start = sh(2026, 3, 16, 22, 30)
    snap = AssignmentSnapshot("li", start)
    assert due_steps(snap, COLD_LADDER, CAL, sh(2026, 3, 17, 23, 0)) == []
    assert next_step_at(snap, COLD_LADDER, CAL) == sh(2026, 3, 18, 7, 0)
    assert keys(due_steps(snap, COLD_LADDER, CAL, sh(2026, 3, 18, 7, 0))) == ["remind@wall:1d"]


def test_cold_ladder_counts_weekends_in_wall_time() -> None:
    start = sh(2026, 3, 13, 10, 0)  # Friday
    snap = AssignmentSnapshot("li", start)
    assert keys(due_steps(snap, COLD_LADDER, CAL, sh(2026, 3, 14, 10, 0))) == ["remind@wall:1d"]


def test_next_step_at_points_at_the_first_undone_step() -> None:
    start = sh(2026, 3, 13, 23, 0)
    snap = AssignmentSnapshot("li", start, done=frozenset({"remind@5m"}))
    assert next_step_at(snap, DEFAULT_LADDER, CAL) == sh(2026, 3, 16, 9, 25)


# --- reassignee -----------------------------------------------------------------------------

MEMBERS = ["zhang", "li", "wang", "chen"]


def test_reassignee_is_never_the_current_rep() -> None:
    assert pick_reassignee(["li", "wang"], {"li", "wang"}, "li", (), {"wang": 9}) == "wang"


def test_reassignee_is_the_least_loaded_available_newcomer() -> None:
    counts = {"zhang": 1, "li": 0, "wang": 3, "chen": 1}
    assert pick_reassignee(MEMBERS, {"zhang", "wang", "chen"}, "li", (), counts) == "zhang"


def test_reassignee_skips_previous_reps() -> None:
    assert pick_reassignee(MEMBERS, set(MEMBERS), "li", ("zhang",), {}) == "wang"


def test_nobody_left_means_none() -> None:
    assert pick_reassignee(MEMBERS, {"li", "zhang"}, "li", ("zhang",), {}) is None
    assert pick_reassignee(["li"], {"li"}, "li", (), {}) is None


# --- config -------------------------------------------------------------------------------

def test_ladder_from_config_reads_a_ladder() -> None:
    raw = {"max_reassignments": 1, "exhausted": "pool", "steps": [
        {"kind": "remind", "after": "5m"}, {"kind": "escalate", "after": "15m"},
        {"kind": "reassign", "after": "30m"}]}
    ladder, problems = ladder_from_config(raw, "config.toml", "sla.ladders.fast.")
    assert problems == []
    assert ladder.name == "fast" and ladder.max_reassignments == 1 and ladder.exhausted_folder == "pool"
    assert [s.key for s in ladder.steps] == ["remind@5m", "escalate@15m", "reassign@30m"]


def test_ladder_from_config_wall_time_days() -> None:
    raw = {"business_time": False, "steps": [{"kind": "remind", "after": "1d"}, {"kind": "escalate", "after": "2d"}]}
    ladder, problems = ladder_from_config(raw, "config.toml", "sla.ladders.cold.")
    assert problems == []
    assert ladder.steps == COLD_LADDER.steps


def problem_messages(raw: dict) -> dict[str, str]:
    _, problems = ladder_from_config(raw, "rules/50-routing.toml", "sla.ladders.x.")
    assert all(p.file == "rules/50-routing.toml" for p in problems)
    return {p.key.removeprefix("sla.ladders.x."): p.message for p in problems}


@pytest.mark.parametrize(("raw", "key", "text"), [
    ({"steps": [{"kind": "remind", "after": "5"}]}, "steps[0].after", "must be like 5m, 2h, 1d"),
    ({"steps": [{"kind": "remind", "after": "5 minutes"}]}, "steps[0].after", "must be like 5m, 2h, 1d"),
    ({"steps": [{"kind": "remind"}]}, "steps[0].after", "is required"),
    ({"steps": [{"kind": "nag", "after": "5m"}]}, "steps[0].kind", "must be one of remind, escalate, reassign, pool"),
    ({"steps": [{"kind": "remind", "after": "5m", "to": "boss"}]}, "steps[0].to", "unknown key"),
    ({"steps": [{"kind": "remind", "after": "1d"}]}, "steps[0].after", "days of business time are ambiguous"),
    ({"steps": []}, "steps", "needs a list of steps"),
    ({}, "steps", "needs a list of steps"),
    ({"steps": ["remind"]}, "steps[0]", "must be a table"),
    ({"steps": [{"kind": "reassign", "after": "30m"}, {"kind": "remind", "after": "40m"}]},
     "steps[0].kind", "must be the last step"),
    ({"steps": [{"kind": "escalate", "after": "15m"}, {"kind": "remind", "after": "5m"}]},
     "steps", "in order"),
    ({"steps": [{"kind": "remind", "after": "5m"}, {"kind": "remind", "after": "5m"}]},
     "steps[1]", "same step"),
    ({"steps": [{"kind": "pool", "after": "5m", "folder": "trash"}]}, "steps[0].folder", "pool or manager"),
    ({"steps": [{"kind": "remind", "after": "5m", "folder": "pool"}]}, "steps[0].folder", "only pool steps"),
    ({"steps": [{"kind": "remind", "after": "5m"}], "max_reassignments": "two"}, "max_reassignments", "must be an integer"),
    ({"steps": [{"kind": "remind", "after": "5m"}], "exhausted": "bin"}, "exhausted", "manager or pool"),
    ({"steps": [{"kind": "remind", "after": "5m"}], "colour": "red"}, "colour", "unknown key"),
])
def test_ladder_config_problems(raw: dict, key: str, text: str) -> None:
    messages = problem_messages(raw)
    assert key in messages, messages
    assert text in messages[key]


def test_a_broken_ladder_reports_all_problems_at_once() -> None:
    messages = problem_messages({"steps": [{"kind": "nag", "after": "5m"}, {"kind": "remind", "after": "x"}],
                                 "exhausted": "bin"})
    assert set(messages) == {"steps[0].kind", "steps[1].after", "exhausted"}
