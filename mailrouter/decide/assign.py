"""Decide where an inquiry goes: pure functions of the inquiry, the rules and a state snapshot.

The caller (the pipeline) reads the state it needs from the database, calls `decide`, and
records the result; nothing here touches IMAP, SMTP or the database, so `explain` and the
daemon take the same path.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mailrouter.decide.classify import is_auto_reply, not_an_inquiry
from mailrouter.decide.trust import Claim, own_claim, router_claim
from mailrouter.decide.words import words
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


def rep_name(config: Config, rep_id: str | None) -> str:
    """How a reason names a rep: reasons reach people (forwards, explain), who know names, not
    config ids (issue 15 item 2). An id no longer configured is shown as it is."""
    rep = config.reps.get(rep_id or "")
    return rep.name if rep is not None and rep.name else (rep_id or "-")


def registry_evidence(match: RegistryMatch, config: Config, language: str = "en") -> str:
    """What the registry matched and whose customer it is, the owner by name, for a reader of
    `language` (RegistryMatch.evidence is the registry's own English, with the owner's id)."""
    w = words(language)
    if not match.detail or match.how not in w:
        return match.evidence  # a match from elsewhere, with no parts to word
    what = w[match.how].format(detail=match.detail)
    said = w["owned"].format(what=what, rep=rep_name(config, match.owner)) if match.owner else w["no_owner"].format(what=what)
    if match.lapsed:
        said += w["lapsed"].format(date=f"{match.customer.last_contact:%Y-%m-%d}", days=config.registry.quiet_days)
    return said


def why_unavailable(rep_id: str, config: Config, state: TeamState, language: str = "en") -> str:
    w, name = words(language), rep_name(config, rep_id)
    if rep_id not in config.reps or not config.reps[rep_id].active:
        return w["inactive"].format(rep=name)
    if rep_id in state.away:
        return w["away"].format(rep=name)
    return w["full"].format(rep=name, open=state.open_counts.get(rep_id, 0), cap=config.reps[rep_id].max_open)


def decide(inquiry: Inquiry, config: Config, state: TeamState,
           match: RegistryMatch | None = None, language: str = "en") -> Decision:
    """Our own mail → Ignored (a forged claim to be → Unrecognized); not an inquiry → Ignored;
    a known customer → its owner (before or after the rules, as configured); else the first
    matching rule; else Unrecognized for the manager. The reason is worded in `language`
    (the classifiers' and the registry's own words stay English)."""
    if claim := own_mail_claim(inquiry, config):
        return Decision(claim.outcome, claim.reason)
    reason = not_an_inquiry(inquiry)
    if reason:
        return Decision(Outcome.IGNORED, reason)
    if match is not None and match.status == BLOCKED and config.registry.enabled:
        return Decision(Outcome.IGNORED,
                        words(language)["blocked"].format(why=match.status_reason or registry_evidence(match, config, language)))
    live = match if match is not None and not match.lapsed and config.registry.enabled else None
    before = config.registry.position == "before_rules"
    if live and before and (owner_decision := to_owner(live, config, state, language)):
        return owner_decision
    by_rule = by_rules(inquiry, config, state, match, language)
    if by_rule.outcome is Outcome.UNRECOGNIZED and live and not before:
        return to_owner(live, config, state, language) or by_rule
    return by_rule


def own_mail_claim(inquiry: Inquiry, config: Config) -> Claim | None:
    """Judge a message's claim to be the router's own or a rep's (decide/trust.py)."""
    return router_claim(inquiry, config.marker_key) or own_claim(
        inquiry, config.own_addresses, config.own_domains, config.authserv_ids, is_auto_reply(inquiry))


def by_rules(inquiry: Inquiry, config: Config, state: TeamState,
             match: RegistryMatch | None = None, language: str = "en") -> Decision:
    w = words(language)
    rule = config.rules.first_match(inquiry)
    lapsed = w["then"].format(why=registry_evidence(match, config, language)) if match and match.lapsed else ""
    if rule is None:
        return Decision(Outcome.UNRECOGNIZED, w["no_rule"] + lapsed)
    why = w["rule"].format(name=rule.name, why=rule.reason(inquiry, language)) + lapsed
    if rule.rep:
        if is_available(rule.rep, config, state):
            return Decision(Outcome.ROUTED, why, rule=rule.name, rep=rule.rep, ladder=rule.ladder)
        stand_in = team_of(config, rule.rep)
        unavailable = why_unavailable(rule.rep, config, state, language)
        if stand_in is None:
            return Decision(Outcome.UNRECOGNIZED, why + w["but"].format(why=unavailable), rule=rule.name)
        why += w["then"].format(why=unavailable + w["so_team"])  # away: the team covers
        team = stand_in
    else:
        assert rule.team is not None, "a rule names a rep or a team (checked when rules load)"
        team = config.teams[rule.team]
    available = [m for m in team.members if is_available(m, config, state)]
    if not available:
        return Decision(Outcome.UNRECOGNIZED, why + w["but"].format(why=w["no_member"].format(team=team.id)),
                        rule=rule.name, team=team.id)
    rep_id, how = choose_member(team, available, state, config, language)
    return Decision(Outcome.ROUTED, why + w["then"].format(why=how), rule=rule.name, rep=rep_id, team=team.id,
                    ladder=rule.ladder)


def to_owner(match: RegistryMatch, config: Config, state: TeamState, language: str = "en") -> Decision | None:
    """Route a known customer to its owner, or to the owner's team when the owner is away.

    None when nobody can take it (no owner, or a departed owner with no team): rules decide.
    """
    evidence = registry_evidence(match, config, language)
    notes = [("Re-inquiry 再次询盘", registry_evidence(match, config))]
    if match.status == REJECTED:
        notes.append(("Previously rejected", match.status_reason or "(no reason given)"))
    if match.status == DO_NOT_CONTACT:
        return Decision(Outcome.UNRECOGNIZED, f"{evidence}; customer is marked do-not-contact"
                        + (f": {match.status_reason}" if match.status_reason else ""))
    if match.owner and is_available(match.owner, config, state):
        return Decision(Outcome.ROUTED, evidence, rep=match.owner, how="registry", notes=tuple(notes))
    team = team_of(config, match.owner)
    available = [m for m in team.members if is_available(m, config, state)] if team else []
    if team is None or not available:
        return None
    rep_id, how = choose_member(team, available, state, config, language)
    away = words(language)["owner_away"].format(
        rep=rep_name(config, match.owner), why=why_unavailable(match.owner or "-", config, state, language), how=how)
    notes.append(("Handover", away))
    return Decision(Outcome.ROUTED, evidence + words(language)["then"].format(why=away), rep=rep_id, team=team.id,
                    how="registry", notes=tuple(notes))


def choose_member(team: TeamConfig, available: list[str], state: TeamState,
                  config: Config, language: str = "en") -> tuple[str, str]:
    """Pick a member by the team's strategy; return the rep and a phrase saying how."""
    w = words(language)
    if team.strategy == "least_loaded":
        rep = min(available, key=lambda m: (state.open_counts.get(m, 0), team.members.index(m)))
        return rep, w["least_loaded"].format(team=team.id, rep=rep_name(config, rep),
                                             open=state.open_counts.get(rep, 0))
    return next_in_rotation(team, available, state.last_assigned.get(team.id)), \
        w["round_robin"].format(team=team.id)


def next_in_rotation(team: TeamConfig, available: list[str], last: str | None) -> str:
    """The first available member after `last` in the team's order (wrapping around)."""
    order = list(team.members)
    start = order.index(last) + 1 if last in order else 0
    for i in range(len(order)):
        candidate = order[(start + i) % len(order)]
        if candidate in available:
            return candidate
    return available[0]
