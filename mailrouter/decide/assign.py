"""Decide where an inquiry goes: pure functions of the inquiry, the rules and a state snapshot.

The caller (the pipeline) reads the state it needs from the database, calls `decide`, and
records the result; nothing here touches IMAP, SMTP or the database, so `explain` and the
daemon take the same path.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mailrouter.decide.classify import is_auto_reply, not_an_inquiry
from mailrouter.decide.trust import Claim, own_claim, router_claim
from mailrouter.config.schema import Config, TeamConfig
from mailrouter.model import Decision, Inquiry, Outcome
from mailrouter.registry.verdict import RegistryMatch
from mailrouter.registry.verdict import BLOCKED, DO_NOT_CONTACT, REJECTED



def team_of(config: Config, rep: str | None) -> TeamConfig | None:
    """The first team (in config order) that lists `rep` as a member; None for a rep in no team."""
    return next((t for t in config.teams.values() if rep in t.members), None)


@dataclass(frozen=True)
class TeamState:
    """What assignment needs to know about the team right now."""

    last_assigned: dict[str, str] = field(default_factory=dict)  # team -> rep last given one
    open_counts: dict[str, int] = field(default_factory=dict)  # rep -> unreplied assignments
    away: frozenset[str] = frozenset()  # reps marked away (`mailrouter rep away`)

    def after(self, decision: Decision) -> TeamState:
        """The state once `decision` is recorded: lets a batch be decided from one snapshot."""
        if decision.outcome is not Outcome.ROUTED or decision.rep is None:
            return self
        counts = {**self.open_counts, decision.rep: self.open_counts.get(decision.rep, 0) + 1}
        last = {**self.last_assigned, decision.team: decision.rep} if decision.team else self.last_assigned
        return TeamState(last, counts, self.away)


def is_available(rep_id: str, config: Config, state: TeamState) -> bool:
    """Active, not away, and under the rep's cap on unreplied inquiries (reps.X.max_open)."""
    rep = config.reps.get(rep_id)
    cap = rep.max_open if rep else None
    return (rep is not None and rep.active and rep_id not in state.away
            and (cap is None or state.open_counts.get(rep_id, 0) < cap))


def why_unavailable(rep_id: str, config: Config, state: TeamState) -> str:
    if rep_id not in config.reps or not config.reps[rep_id].active:
        return f"rep {rep_id} is inactive"
    if rep_id in state.away:
        return f"rep {rep_id} is away"
    return f"rep {rep_id} has {state.open_counts.get(rep_id, 0)} unreplied (cap {config.reps[rep_id].max_open})"


def decide(inquiry: Inquiry, config: Config, state: TeamState,
           match: RegistryMatch | None = None) -> Decision:
    """Our own mail → Ignored (a forged claim to be → Unrecognized); not an inquiry → Ignored;
    a known customer → its owner (before or after the rules, as configured); else the first
    matching rule; else Unrecognized for the manager."""
    if claim := own_mail_claim(inquiry, config):
        return Decision(claim.outcome, claim.reason)
    reason = not_an_inquiry(inquiry)
    if reason:
        return Decision(Outcome.IGNORED, reason)
    if match is not None and match.status == BLOCKED and config.registry.enabled:
        return Decision(Outcome.IGNORED, f"sender blocked: {match.status_reason or match.evidence}")
    live = match if match is not None and not match.lapsed and config.registry.enabled else None
    before = config.registry.position == "before_rules"
    if live and before and (owner_decision := to_owner(live, config, state)):
        return owner_decision
    by_rule = by_rules(inquiry, config, state, match)
    if by_rule.outcome is Outcome.UNRECOGNIZED and live and not before:
        return to_owner(live, config, state) or by_rule
    return by_rule


def own_mail_claim(inquiry: Inquiry, config: Config) -> Claim | None:
    """Judge a message's claim to be the router's own or a rep's (decide/trust.py)."""
    return router_claim(inquiry, config.marker_key) or own_claim(
        inquiry, config.own_addresses, config.own_domains, config.authserv_ids, is_auto_reply(inquiry))


def by_rules(inquiry: Inquiry, config: Config, state: TeamState,
             match: RegistryMatch | None = None) -> Decision:
    rule = config.rules.first_match(inquiry)
    lapsed = (f"; {match.evidence}",) if match is not None and match.lapsed else ()
    if rule is None:
        return Decision(Outcome.UNRECOGNIZED, "no rule matched" + "".join(lapsed))
    why = f"rule {rule.name!r}: {rule.reason(inquiry)}" + "".join(lapsed)
    if rule.rep:
        if is_available(rule.rep, config, state):
            return Decision(Outcome.ROUTED, why, rule=rule.name, rep=rule.rep, ladder=rule.ladder)
        stand_in = team_of(config, rule.rep)
        if stand_in is None:
            return Decision(Outcome.UNRECOGNIZED, f"{why}; but {why_unavailable(rule.rep, config, state)}",
                            rule=rule.name)
        why = f"{why}; {why_unavailable(rule.rep, config, state)}, so their team"  # away: the team covers
        team = stand_in
    else:
        assert rule.team is not None, "a rule names a rep or a team (checked when rules load)"
        team = config.teams[rule.team]
    available = [m for m in team.members if is_available(m, config, state)]
    if not available:
        return Decision(Outcome.UNRECOGNIZED, f"{why}; but team {team.id} has no available member",
                        rule=rule.name, team=team.id)
    rep_id, how = choose_member(team, available, state)
    return Decision(Outcome.ROUTED, f"{why}; {how}", rule=rule.name, rep=rep_id, team=team.id,
                    ladder=rule.ladder)


def to_owner(match: RegistryMatch, config: Config, state: TeamState) -> Decision | None:
    """Route a known customer to its owner, or to the owner's team when the owner is away.

    None when nobody can take it (no owner, or a departed owner with no team): rules decide.
    """
    notes = [("Re-inquiry 再次询盘", match.evidence)]
    if match.status == REJECTED:
        notes.append(("Previously rejected", match.status_reason or "(no reason given)"))
    if match.status == DO_NOT_CONTACT:
        return Decision(Outcome.UNRECOGNIZED, f"{match.evidence}; customer is marked do-not-contact"
                        + (f": {match.status_reason}" if match.status_reason else ""))
    if match.owner and is_available(match.owner, config, state):
        return Decision(Outcome.ROUTED, match.evidence, rep=match.owner, how="registry", notes=tuple(notes))
    team = team_of(config, match.owner)
    available = [m for m in team.members if is_available(m, config, state)] if team else []
    if team is None or not available:
        return None
    rep_id, how = choose_member(team, available, state)
    away = f"owner {match.owner} is not available ({why_unavailable(match.owner or '-', config, state)}); {how}"
    notes.append(("Handover", away))
    return Decision(Outcome.ROUTED, f"{match.evidence}; {away}", rep=rep_id, team=team.id,
                    how="registry", notes=tuple(notes))


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
