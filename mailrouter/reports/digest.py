"""A supervisor's digest: their teams' figures for a period and what is overdue now.

Only the content is made here (subject, text, HTML); scheduling and sending belong to the
daemon. The HTML part has tables only: mail clients strip SVG and styles they do not know.
"""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy.orm import Session

from mailrouter.config.schema import Config
from mailrouter.sla.notify import one_line
from mailrouter.act.templating import make_environment, render
from mailrouter.reports.figures import Period, Report, Scope, compute_report
from mailrouter.reports.overdue import HEADERS as OVERDUE_HEADERS
from mailrouter.reports.overdue import Overdue, overdue_now, overdue_rows
from mailrouter.reports.render import (GROUP_COLUMNS, align_table, fairness_rows, group_rows, headline_rows,
                                      headline_table, labels, period_text)

# The columns a supervisor reads in a mail; the full set is in `mailrouter report`.
DIGEST_COLUMNS = ("key", "assigned", "replied", "unanswered", "share", "b_median", "b_p90", "within_5m",
                  "over_60m", "met_due", "never", "reassigned", "collisions")
_PICK = [GROUP_COLUMNS.index(c) for c in DIGEST_COLUMNS]


def supervised_teams(config: Config, supervisor: str) -> tuple[str, ...]:
    return tuple(sorted(t.id for t in config.teams.values() if t.supervisor == supervisor))


def digest_for_supervisor(session: Session, config: Config, supervisor_rep_id: str,
                          period: Period, now: datetime) -> tuple[str, str, str]:
    """(subject, text, html) in the supervisor's language; ValueError if they supervise no team."""
    teams = supervised_teams(config, supervisor_rep_id)
    if supervisor_rep_id not in config.reps or not teams:
        raise ValueError(f"{supervisor_rep_id!r} supervises no team")
    report = compute_report(
        session, Scope(period, teams=teams), now, tz=config.timezone,
        members={t: config.teams[t].members for t in teams},
        names={r.id: r.name for r in config.reps.values()})
    overdue = overdue_now(session, now, teams=teams)
    language = config.reps[supervisor_rep_id].language
    ctx = digest_context(report, overdue, config, supervisor_rep_id, teams, language)
    env = make_environment(config.template_dirs)
    text = render(env, "digest.txt.j2", language, **ctx)
    subject, _, body = text.partition("\n")
    return one_line(subject), body.lstrip("\n"), render(env, "digest.html.j2", language, **ctx)


def period_dates(period: Period, tz: tzinfo) -> str:
    """"2026-11-02 – 2026-11-08": local days, the last one inclusive, for a subject line."""
    first = period.since.astimezone(tz).date()
    last = (period.until - timedelta(microseconds=1)).astimezone(tz).date()
    return str(first) if first == last else f"{first} – {last}"


def _pick(rows: list[list[str]]) -> list[list[str]]:
    return [[row[i] for i in _PICK] for row in rows]


def digest_context(report: Report, overdue: list[Overdue], config: Config, supervisor: str,
                   teams: tuple[str, ...], language: str) -> dict[str, Any]:
    """Template variables: rows already formatted, plus aligned text tables for the text part."""
    lab, tz = labels(language), config.timezone
    headers = [lab[c] for c in DIGEST_COLUMNS]
    team_rows, rep_rows = _pick(group_rows(report.by_team, {})), _pick(group_rows(report.by_rep, report.names))
    o_headers = list(OVERDUE_HEADERS["zh" if lab is labels("zh") else "en"])
    o_rows = overdue_rows(overdue, report.names, tz)
    return {
        "lab": lab, "supervisor": one_line(config.reps[supervisor].name), "teams": ", ".join(teams),
        "period": period_text(report, tz), "dates": period_dates(report.scope.period, tz),
        "total": report.total,
        "headline": headline_rows(report, language),
        "headline_table": headline_table(report, language, tz),
        "headers": headers, "team_rows": team_rows, "rep_rows": rep_rows,
        "team_table": align_table(headers, team_rows) if team_rows else "",
        "rep_table": align_table(headers, rep_rows) if rep_rows else "",
        "fairness_headers": [lab[c] for c in ("fair_team", "fair_rep", "assigned", "team_share",
                                              "average", "ratio")],
        "fairness_rows": fairness_rows(report),
        "overdue_count": len(overdue), "overdue_headers": o_headers, "overdue_rows": o_rows,
        "overdue_table": align_table(o_headers, o_rows) if o_rows else "",
    }
