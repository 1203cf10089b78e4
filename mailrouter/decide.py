"""Decide where an inquiry goes: pure functions of the inquiry, the rules and a state snapshot.

The caller (the pipeline) reads the state it needs from the database, calls `decide`, and
records the result; nothing here touches IMAP, SMTP or the database, so `explain` and the
daemon take the same path.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .classify import not_an_inquiry
from .config import Config, TeamConfig
from .model import Decision, Inquiry, Outcome


@dataclass(frozen=True)
class TeamState:
    """What assignment needs to know about the team right now."""

    last_assigned: dict[str, str] = field(default_factory=dict)  # team -> rep last given one
    open_counts: dict[str, int] = field(default_factory=dict)  # rep -> unreplied assignments


def decide(inquiry: Inquiry, config: Config, state: TeamState) -> Decision:
    reason = not_an_inquiry(inquiry, config.own_addresses)
    if reason:
        return Decision(Outcome.IGNORED, reason)
    rule = config.rules.first_match(inquiry)
    if rule is None:
        return Decision(Outcome.UNRECOGNIZED, "no rule matched")
    why = f"rule {rule.name!r}: {rule.reason(inquiry)}"
    if rule.rep:
        rep = config.reps[rule.rep]
        if rep.active:
            return Decision(Outcome.ROUTED, why, rule=rule.name, rep=rep.id)
        return Decision(Outcome.UNRECOGNIZED, f"{why}; but rep {rep.id} is inactive", rule=rule.name)
    team = config.teams[rule.team]
    available = [m for m in team.members if config.reps[m].active]
    if not available:
        return Decision(Outcome.UNRECOGNIZED, f"{why}; but team {team.id} has no active member",
                        rule=rule.name, team=team.id)
    rep_id, how = choose_member(team, available, state)
    return Decision(Outcome.ROUTED, f"{why}; {how}", rule=rule.name, rep=rep_id, team=team.id)


def choose_member(team: TeamConfig, available: list[str], state: TeamState) -> tuple[str, str]:
    """Pick a member by the team's strategy; return the rep and a phrase saying how."""
    if team.strategy == "least_loaded":
        rep = min(available, key=lambda m: (state.open_counts.get(m, 0), team.members.index(m)))
        return rep, f"team {team.id} least loaded: {rep} has {state.open_counts.get(rep, 0)} open"
    return next_in_rotation(team, available, state.last_assigned.get(team.id)), \
        f"team {team.id} round robin"


def next_in_rotation(team: TeamConfig, available: list[str], last: str | None) -> str:
    """The first available member after `last` in the team's order (wrapping around)."""
    order = list(team.members)
    start = order.index(last) + 1 if last in order else 0
    for i in range(len(order)):
        candidate = order[(start + i) % len(order)]
        if candidate in available:
            return candidate
    return available[0]
