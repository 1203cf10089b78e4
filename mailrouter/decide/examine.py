"""The decision for one message, pure: the daemon, Assign/, reassignment, `explain` and `dry-run`
all ask here.

What the impure callers found out - the parse, the registry's match, whether the content was
seen before, the teams' rotation and load - comes in as plain data; nothing here reads the
database, IMAP or the clock, so the same inputs always give the same Decision.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from mailrouter.config.schema import Config
from mailrouter.decide.assign import TeamState, choose_member, decide, is_available, rep_name
from mailrouter.decide.words import LANGUAGES, words
from mailrouter.model import Decision, Inquiry, Outcome
from mailrouter.parse.process import Parsed
from mailrouter.registry.score import Score, score_inquiry
from mailrouter.registry.verdict import RegistryMatch

log = logging.getLogger("mailrouter.route")


@dataclass(frozen=True)
class Examined:
    """What the pure stages made of one message."""

    inquiry: Inquiry | None  # None when the message could not be parsed at all
    decision: Decision
    match: RegistryMatch | None = None
    score: Score | None = None


@dataclass(frozen=True)
class Earlier:
    """The duplicate verdict: the message this one repeats (same content key)."""

    id: int
    mailbox: str
    outcome: str


@dataclass(frozen=True)
class ManualTarget:
    """What an Assign/ folder means: a rep, a team (its strategy picks), or not an inquiry."""

    kind: str  # "rep" | "team" | "ignore"
    id: str = ""


def examine(parsed: Parsed, config: Config, state: TeamState, match: RegistryMatch | None = None,
            earlier: Earlier | None = None, language: str | None = None) -> Examined:
    """Score and decide. An unreadable message, or a bug in any rule, quarantines the message
    instead of stopping the daemon; a repeat of `earlier` is a duplicate. The reason is also
    worded for its reader: `language` (explain's), else the chosen rep's (the forward's)."""
    inquiry = parsed.inquiry
    if inquiry is None:
        return Examined(None, Decision(Outcome.QUARANTINED, parsed.problem))
    if earlier is not None:
        return Examined(None, Decision(
            Outcome.DUPLICATE, f"same message as #{earlier.id} in {earlier.mailbox} ({earlier.outcome})"))
    try:
        score = score_inquiry(inquiry, config.registry.score,
                              reinquiry=match is not None and not match.lapsed)
        inquiry = replace(inquiry, score=score.points, tier=score.tier)
        decision = decide(inquiry, config, state, match)
        reader = language or _rep_language(decision, config)
        if reader != "en":  # the same pure decision again, in the reader's words
            decision = replace(decision, reasons=((reader, decide(inquiry, config, state, match, reader).reason),))
        return Examined(inquiry, with_score(decision, score, reader), match, score)
    except Exception as exc:
        log.exception("decision failed for %s", inquiry.message_id)
        return Examined(inquiry, Decision(Outcome.QUARANTINED, f"rule error: {type(exc).__name__}: {exc}"))


def examine_manual(parsed: Parsed, config: Config, state: TeamState, target: ManualTarget,
                   folder: str) -> Examined:
    """The manager's choice, as a Decision the rest of the pipeline treats like any other."""
    inquiry = parsed.inquiry
    if inquiry is None:  # the manager asked for it: an unreadable message still goes to Quarantine
        return Examined(None, Decision(Outcome.QUARANTINED, parsed.problem))
    if target.kind == "ignore":
        said = {lang: words(lang)["not_inquiry"].format(why=words(lang)["manual"].format(folder=folder))
                for lang in LANGUAGES}
        return Examined(inquiry, _worded(Decision(Outcome.IGNORED, "", how="manual"), said))
    if target.kind == "rep":
        said = {lang: words(lang)["manual"].format(folder=folder) for lang in LANGUAGES}
        return Examined(inquiry, _worded(Decision(Outcome.ROUTED, "", rep=target.id, how="manual"), said))
    team = config.teams[target.id]
    available = [m for m in team.members if is_available(m, config, state)] or list(team.members)
    rep, _how = choose_member(team, available, state, config)
    said = {lang: words(lang)["manual"].format(folder=folder)
            + words(lang)["then"].format(why=choose_member(team, available, state, config, lang)[1])
            for lang in LANGUAGES}
    return Examined(inquiry, _worded(Decision(Outcome.ROUTED, "", rep=rep, team=team.id, how="manual"), said))


def examine_reassignment(parsed: Parsed, config: Config, old_rep: str, new_rep: str, team: str | None,
                         rule: str | None, waited: timedelta) -> Examined:
    """The ladder's choice (sla/ladder.pick_reassignee) as a Decision: the inquiry goes to
    `new_rep` with its history, the previous rep named as people know them; an original that no
    longer parses cannot be forwarded."""
    if parsed.inquiry is None:
        return Examined(None, Decision(Outcome.QUARANTINED, parsed.problem))
    old = rep_name(config, old_rep)
    said = {lang: words(lang)["reassigned"].format(rep=old) for lang in LANGUAGES}
    return Examined(parsed.inquiry, _worded(Decision(
        Outcome.ROUTED, "", rule=rule, rep=new_rep, team=team, how="reassign",
        notes=(("Reassigned 转派", _words_of(config, new_rep)["reassign_note"].format(
            rep=old, minutes=int(waited.total_seconds() // 60))),)), said))


def _worded(decision: Decision, said: dict[str, str]) -> Decision:
    """`decision` with its reason in English and in every other language it was said in."""
    return replace(decision, reason=said["en"], reasons=tuple((k, v) for k, v in said.items() if k != "en"))


def _words_of(config: Config, rep_id: str) -> dict[str, str]:
    """The phrases of a rep's language: for what only their forward shows."""
    rep = config.reps.get(rep_id)
    return words(rep.language if rep is not None else "en")


def _rep_language(decision: Decision, config: Config) -> str:
    rep = config.reps.get(decision.rep or "")
    return rep.language if rep is not None else "en"


def failed(parsed: Parsed, stage: str, exc: BaseException) -> Examined:
    """A stage around the decision raised for this message: it goes to Quarantine, with why."""
    return Examined(parsed.inquiry, Decision(Outcome.QUARANTINED, f"{stage} error: {type(exc).__name__}: {exc}"))


def with_score(decision: Decision, score: Score, language: str = "en") -> Decision:
    if decision.outcome is not Outcome.ROUTED:
        return decision
    reasons = score.reasons_in(language)
    colon, sep = ("：", "；") if language == "zh" else (": ", "; ")
    line = f"{score.points} ({score.tier})" + (colon + sep.join(reasons) if reasons else "")
    return replace(decision, notes=decision.notes + (("Lead score", line),))


def destination(decision: Decision, config: Config) -> tuple[str, tuple[str, ...]]:
    """The folder and IMAP keywords for the shared copy."""
    f, prefix = config.folders, config.keyword_prefix
    if decision.outcome is Outcome.ROUTED:
        assert decision.rep is not None, "a routed decision names its rep"
        rep = config.reps[decision.rep]
        # A returning buyer's copy is marked for the manager's searches: the label that left the
        # subject (issue 15). One fixed keyword; per-country ones would hit maildir's 26.
        reinquiry = (prefix + "reinquiry",) if decision.reinquiry else ()
        return f.routed.format(rep=rep.folder), (prefix + "routed", prefix + rep.id, *reinquiry)
    folder = {
        Outcome.UNRECOGNIZED: f.unrecognized, Outcome.IGNORED: f.ignored,
        Outcome.DUPLICATE: f.duplicate, Outcome.QUARANTINED: f.quarantine,
        Outcome.UNDELIVERABLE: f.undeliverable,
    }[decision.outcome]
    return folder, (prefix + decision.outcome.value,)
