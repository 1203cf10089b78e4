"""A Report as a terminal table, CSV for Excel, JSON, or a self-contained HTML page.

The figures are computed once (figures.py); each format here only lays them out, in English
or Chinese headings.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from mailrouter.act.templating import make_environment, render
from mailrouter.reports import svg
from mailrouter.reports.figures import HISTOGRAM_EDGES, GroupFigures, Report

FORMATS = ("table", "csv", "json", "html")
BOM = "\ufeff"  # Excel reads a CSV as UTF-8 only when it starts with this

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "First-reply report", "period": "Period", "total": "Assignments",
        "rep": "By rep", "team": "By team", "rule": "By rule", "country": "By country",
        "language": "By language", "product": "By product line",
        "fairness": "Fairness (share of the team against the team average)",
        "backlog": "Unrecognized backlog", "backlog_count": "Waiting", "oldest": "Oldest",
        "key": "Name", "assigned": "Assigned", "replied": "Replied", "share": "Share",
        "b_median": "Median (biz)", "b_mean": "Mean (biz)", "b_p90": "P90 (biz)",
        "w_median": "Median (wall)", "w_mean": "Mean (wall)", "w_p90": "P90 (wall)",
        "within_5m": "≤5 min", "over_5m": ">5 min", "over_30m": ">30 min", "over_60m": ">60 min",
        "met_due": "Met SLA", "never": "Never answered", "reassigned": "Reassigned away",
        "collisions": "Collisions", "fair_team": "Team", "fair_rep": "Rep",
        "team_share": "Share of team", "average": "Team average", "ratio": "Ratio",
        "chart_distribution": "First-reply time per rep (business time)",
        "chart_volume": "Assignments per day by team", "chart_sla": "Share replied within SLA",
        "none": "—", "generated": "Generated", "section": "Section", "oldest_age": "Oldest age (s)",
        "notes": "Median and P90 are nearest-rank; thresholds use business time.",
    },
    "zh": {
        "title": "首次回复报表", "period": "统计期间", "total": "分配总数",
        "rep": "按业务员", "team": "按团队", "rule": "按规则", "country": "按国家",
        "language": "按语言", "product": "按产品线",
        "fairness": "分配公平性（在团队中的占比 / 团队平均占比）",
        "backlog": "未识别积压", "backlog_count": "待处理", "oldest": "最早",
        "key": "名称", "assigned": "分配", "replied": "已回复", "share": "占比",
        "b_median": "中位数(工作)", "b_mean": "平均(工作)", "b_p90": "P90(工作)",
        "w_median": "中位数(自然)", "w_mean": "平均(自然)", "w_p90": "P90(自然)",
        "within_5m": "≤5分钟", "over_5m": ">5分钟", "over_30m": ">30分钟", "over_60m": ">60分钟",
        "met_due": "按时", "never": "未回复", "reassigned": "被转走", "collisions": "撞单",
        "fair_team": "团队", "fair_rep": "业务员", "team_share": "团队占比",
        "average": "团队平均", "ratio": "比值",
        "chart_distribution": "各业务员首次回复时间分布（工作时间）",
        "chart_volume": "各团队每日分配量", "chart_sla": "按时回复比例",
        "none": "—", "generated": "生成时间", "section": "分组", "oldest_age": "最长等待(秒)",
        "notes": "中位数和P90按最近秩法计算；时限按工作时间计算。",
    },
}
GROUP_COLUMNS = ("key", "assigned", "replied", "share", "b_median", "b_mean", "b_p90",
                 "w_median", "w_mean", "w_p90", "within_5m", "over_5m", "over_30m", "over_60m",
                 "met_due", "never", "reassigned", "collisions")
SECTIONS = ("rep", "team", "rule", "country", "language", "product")


def labels(language: str) -> dict[str, str]:
    return LABELS["zh" if language.lower().startswith("zh") else "en"]


# --- values -------------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """Short human time: 45s, 12.5m, 3.2h, 1.5d."""
    if seconds is None:
        return "—"
    for limit, unit, div in ((60, "s", 1), (3600, "m", 60), (86400, "h", 3600)):
        if seconds < limit:
            return f"{seconds / div:.0f}{unit}" if unit == "s" else f"{seconds / div:.1f}{unit}"
    return f"{seconds / 86400:.1f}d"


def _raw(g: GroupFigures) -> dict[str, Any]:
    """Group figures by column name, as numbers (CSV, JSON) before any display formatting."""
    return {"key": g.key, "assigned": g.assigned, "replied": g.replied, "share": g.share,
            "b_median": g.business.median, "b_mean": g.business.mean, "b_p90": g.business.p90,
            "w_median": g.wall.median, "w_mean": g.wall.mean, "w_p90": g.wall.p90,
            "within_5m": g.within_5m, "over_5m": g.over_5m, "over_30m": g.over_30m,
            "over_60m": g.over_60m, "met_due": g.met_due, "never": g.never_answered,
            "reassigned": g.reassigned_away, "collisions": g.collisions}


def _display(column: str, value: Any, names: Mapping[str, str]) -> str:
    if value is None:
        return "—"
    if column == "key":
        return names.get(value, value) or "—"
    if column == "share":
        return f"{value:.1%}"
    if column.startswith(("b_", "w_")):
        return duration(value)
    return str(value)


def group_rows(groups: Sequence[GroupFigures], names: Mapping[str, str]) -> list[list[str]]:
    return [[_display(c, _raw(g)[c], names) for c in GROUP_COLUMNS] for g in groups]


def fairness_rows(report: Report) -> list[list[str]]:
    return [[f.team, report.names.get(f.rep, f.rep), str(f.assigned), f"{f.share_in_team:.1%}",
             f"{f.team_average_share:.1%}", f"{f.ratio:.2f}"] for f in report.fairness]


FAIRNESS_COLUMNS = ("fair_team", "fair_rep", "assigned", "team_share", "average", "ratio")


def _groups(report: Report, section: str) -> tuple[GroupFigures, ...]:
    return getattr(report, "by_" + section)


def _names_for(report: Report, section: str) -> Mapping[str, str]:
    """Display names apply to reps only: a rule or product may share a rep's id."""
    return report.names if section == "rep" else {}


def period_text(report: Report, tz: tzinfo) -> str:
    p = report.scope.period
    fmt: Callable[[datetime], str] = lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    return f"{fmt(p.since)} – {fmt(p.until)} ({tz})"


def backlog_text(report: Report, tz: tzinfo, language: str) -> str:
    lab, b = labels(language), report.backlog
    oldest = ("—" if b.oldest_received_at is None else
              f"{b.oldest_received_at.astimezone(tz):%Y-%m-%d %H:%M} ({duration(b.oldest_age_seconds)})")
    return f"{lab['backlog_count']}: {b.count}   {lab['oldest']}: {oldest}"


# --- terminal -----------------------------------------------------------------------------


def width(text: str) -> int:
    """Columns a terminal gives the text: CJK wide/fullwidth take two, combining marks none."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def align_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded by display width; the first column left-aligned, figures right-aligned."""
    widths = [max(width(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - width(cell))
            out.append(cell + pad if i == 0 else pad + cell)
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def render_table(report: Report, language: str, tz: tzinfo) -> str:
    lab = labels(language)
    parts = [f"{lab['title']} — {lab['period']}: {period_text(report, tz)}",
             f"{lab['total']}: {report.total}   {lab['notes']}"]
    for section in SECTIONS:
        rows = group_rows(_groups(report, section), _names_for(report, section))
        if rows:
            parts += ["", lab[section], align_table([lab[c] for c in GROUP_COLUMNS], rows)]
    if report.fairness:
        parts += ["", lab["fairness"],
                  align_table([lab[c] for c in FAIRNESS_COLUMNS], fairness_rows(report))]
    parts += ["", lab["backlog"], backlog_text(report, tz, language)]
    return "\n".join(parts) + "\n"


# --- CSV and JSON -------------------------------------------------------------------------


def render_csv(report: Report, language: str) -> str:
    """One CSV with a `section` column; numbers raw (seconds, share as a fraction) for Excel."""
    lab = labels(language)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([lab["section"], *(lab[c] for c in GROUP_COLUMNS)])
    for section in SECTIONS:
        for g in _groups(report, section):
            raw = _raw(g)
            raw["key"] = _names_for(report, section).get(g.key, g.key)
            w.writerow([lab[section], *(_csv_value(raw[c]) for c in GROUP_COLUMNS)])
    w.writerow([])
    w.writerow([lab["section"], *(lab[c] for c in FAIRNESS_COLUMNS)])
    for f in report.fairness:
        w.writerow([lab["fairness"], f.team, report.names.get(f.rep, f.rep), f.assigned,
                    _csv_value(f.share_in_team), _csv_value(f.team_average_share), _csv_value(f.ratio)])
    w.writerow([])
    w.writerow([lab["section"], lab["backlog_count"], lab["oldest"], lab["oldest_age"]])
    b = report.backlog
    w.writerow([lab["backlog"], b.count, b.oldest_received_at.isoformat() if b.oldest_received_at else "",
                _csv_value(b.oldest_age_seconds)])
    return BOM + out.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    return round(value, 4) if isinstance(value, float) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in JSON")


def render_json(report: Report) -> str:
    return json.dumps(dataclasses.asdict(report), default=_json_default, ensure_ascii=False, indent=2)


# --- HTML ---------------------------------------------------------------------------------


def _bucket_labels(language: str) -> list[str]:
    short = [duration(e).replace(".0", "") for e in HISTOGRAM_EDGES]
    return [f"≤{short[0]}", *(f"{a}–{b}" for a, b in zip(short, short[1:])), f">{short[-1]}"]


def charts(report: Report, language: str, tz: tzinfo) -> list[Any]:
    lab = labels(language)
    days = [t.astimezone(tz).strftime("%m-%d") for t in report.series.starts]
    s = report.series
    shares = [met / due if due else None for met, due in zip(s.met_due, s.with_due)]
    dist = [(report.names.get(rep, rep), counts) for rep, counts in report.histogram.counts.items()]
    return [
        (lab["chart_distribution"], svg.distribution_bars(lab["chart_distribution"], dist,
                                                          _bucket_labels(language))),
        (lab["chart_volume"], svg.stacked_columns(lab["chart_volume"], days,
                                                  [(t or "—", v) for t, v in s.volume_by_team.items()])),
        (lab["chart_sla"], svg.share_line(lab["chart_sla"], days, shares)),
    ]


def html_context(report: Report, language: str, tz: tzinfo) -> dict[str, Any]:
    lab = labels(language)
    sections = [(lab[s], group_rows(_groups(report, s), _names_for(report, s))) for s in SECTIONS]
    return {
        "lab": lab, "period": period_text(report, tz), "total": report.total,
        "generated": report.generated_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        "headers": [lab[c] for c in GROUP_COLUMNS],
        "sections": [(title, rows) for title, rows in sections if rows],
        "fairness_headers": [lab[c] for c in FAIRNESS_COLUMNS], "fairness": fairness_rows(report),
        "backlog": backlog_text(report, tz, language), "charts": charts(report, language, tz),
    }


def render_html(report: Report, language: str, tz: tzinfo, template_dirs: Sequence[Path]) -> str:
    env = make_environment(template_dirs)
    return render(env, "report.html.j2", language, **html_context(report, language, tz))


def render_report(report: Report, fmt: str, language: str, tz: tzinfo, template_dirs: Sequence[Path]) -> str:
    if fmt == "table":
        return render_table(report, language, tz)
    if fmt == "csv":
        return render_csv(report, language)
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        return render_html(report, language, tz, template_dirs)
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
