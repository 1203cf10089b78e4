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

from mailrouter.act.templating import country_name, language_name, make_environment, render
from mailrouter.reports import svg
from mailrouter.reports.figures import HISTOGRAM_EDGES, GroupFigures, Report
from mailrouter.reports.headline import HEADLINES
from mailrouter.reports.inquiries import InquiryRow
from mailrouter.reports.slowest import Slow
from mailrouter.sla.notify import one_line
from mailrouter.spreadsheet import neutralise

FORMATS = ("table", "csv", "json", "html", "inquiries")  # inquiries: one CSV row per assignment
BOM = "\ufeff"  # Excel reads a CSV as UTF-8 only when it starts with this

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "First-reply report", "period": "Period", "total": "Assignments",
        "rep": "By rep", "team": "By team", "rule": "By rule", "country": "By country",
        "language": "By language", "product": "By product line",
        "fairness": "Fairness (share of the team against the team average)",
        "backlog": "Waiting for a person", "backlog_count": "Waiting", "oldest": "Oldest",
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
        "unanswered": "Unanswered", "headline": "At a glance",
        "h_median": "Median first reply", "h_p90": "P90 first reply",
        "h_within_sla": "Replied within SLA", "h_open": "Open now", "h_unassigned": "Waiting for a person",
        "previous": "previous period", "was": "was", "pp": "pp",
        "waiting_note": "Waiting for a person: Unrecognized, returned by the ladder, undeliverable, or unreadable.",
        "slowest": "Unanswered and slowest inquiries",
        "s_rep": "Rep", "s_buyer": "Buyer", "s_subject": "Subject", "s_assigned": "Assigned",
        "s_time": "Reply / waiting", "s_state": "State", "s_replied": "replied",
        "s_open": "no reply", "s_pooled": "pooled", "s_undeliverable": "undeliverable",
        "s_reassigned": "reassigned", "s_quarantined": "quarantined",
        "i_received": "Assigned at", "i_team": "Team", "i_country": "Country",
        "i_language": "Language", "i_rule": "Rule", "i_first_reply": "First reply at",
        "i_business": "Business seconds", "i_wall": "Wall seconds", "i_due": "Due at",
        "i_met": "Within SLA", "i_end": "Ended", "yes": "yes", "no": "no",
    },
    "zh": {
        "title": "首次回复报表", "period": "统计期间", "total": "分配总数",
        "rep": "按业务员", "team": "按团队", "rule": "按规则", "country": "按国家",
        "language": "按语言", "product": "按产品线",
        "fairness": "分配公平性（在团队中的占比 / 团队平均占比）",
        "backlog": "待人工处理", "backlog_count": "待处理", "oldest": "最早",
        "key": "名称", "assigned": "分配", "replied": "已回复", "share": "占比",
        "b_median": "中位数(工作)", "b_mean": "平均(工作)", "b_p90": "P90(工作)",
        "w_median": "中位数(自然)", "w_mean": "平均(自然)", "w_p90": "P90(自然)",
        "within_5m": "≤5分钟", "over_5m": ">5分钟", "over_30m": ">30分钟", "over_60m": ">60分钟",
        "met_due": "按时", "never": "逾期未回复", "reassigned": "被转走", "collisions": "撞单",
        "fair_team": "团队", "fair_rep": "业务员", "team_share": "团队占比",
        "average": "团队平均", "ratio": "比值",
        "chart_distribution": "各业务员首次回复时间分布（工作时间）",
        "chart_volume": "各团队每日分配量", "chart_sla": "按时回复比例",
        "none": "—", "generated": "生成时间", "section": "分组", "oldest_age": "最长等待(秒)",
        "notes": "中位数和P90按最近秩法计算；时限按工作时间计算。",
        "unanswered": "未回复", "headline": "概览",
        "h_median": "首次回复中位数", "h_p90": "首次回复P90",
        "h_within_sla": "按时回复率", "h_open": "当前待回复", "h_unassigned": "待人工处理",
        "previous": "上期", "was": "上期", "pp": "个百分点",
        "waiting_note": "待人工处理：未识别、升级流程退回、无法投递或无法读取的询盘。",
        "slowest": "未回复与回复最慢的询盘",
        "s_rep": "业务员", "s_buyer": "客户", "s_subject": "主题", "s_assigned": "分配时间",
        "s_time": "回复用时/已等待", "s_state": "状态", "s_replied": "已回复",
        "s_open": "未回复", "s_pooled": "已退回", "s_undeliverable": "无法投递",
        "s_reassigned": "已转派", "s_quarantined": "已隔离",
        "i_received": "分配时间", "i_team": "团队", "i_country": "国家",
        "i_language": "语言", "i_rule": "规则", "i_first_reply": "首次回复时间",
        "i_business": "工作时间(秒)", "i_wall": "自然时间(秒)", "i_due": "截止时间",
        "i_met": "按时", "i_end": "结束", "yes": "是", "no": "否",
    },
}
GROUP_COLUMNS = ("key", "assigned", "replied", "unanswered", "share", "b_median", "b_mean", "b_p90",
                 "w_median", "w_mean", "w_p90", "within_5m", "over_5m", "over_30m", "over_60m",
                 "met_due", "never", "reassigned", "collisions")
SECTIONS = ("rep", "team", "rule", "country", "language", "product")
# What the table and the page show per group; CSV and JSON keep every column.
VIEW_COLUMNS = ("key", "assigned", "replied", "unanswered", "b_median", "b_p90", "met_due", "share")
WIDTH = 100  # the text report fits a 100-column terminal


def labels(language: str) -> dict[str, str]:
    return LABELS[_lang(language)]


def _lang(language: str) -> str:
    return "zh" if language.lower().startswith("zh") else "en"


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
    return {"key": g.key, "assigned": g.assigned, "replied": g.replied,
            "unanswered": g.unanswered, "share": g.share,
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


def group_rows(groups: Sequence[GroupFigures], names: Mapping[str, str],
               columns: Sequence[str] = GROUP_COLUMNS) -> list[list[str]]:
    return [[_display(c, _raw(g)[c], names) for c in columns] for g in groups]


def fairness_rows(report: Report) -> list[list[str]]:
    return [[f.team, report.names.get(f.rep, f.rep), str(f.assigned), f"{f.share_in_team:.1%}",
             f"{f.team_average_share:.1%}", f"{f.ratio:.2f}"] for f in report.fairness]


FAIRNESS_COLUMNS = ("fair_team", "fair_rep", "assigned", "team_share", "average", "ratio")


def _groups(report: Report, section: str) -> tuple[GroupFigures, ...]:
    return getattr(report, "by_" + section)


def _names_for(report: Report, section: str, language: str = "en") -> Mapping[str, str]:
    """Display names per section (a rule or product may share a rep's id, so each section
    has its own): reps' names from config, countries and languages in the report's language."""
    if section == "rep":
        return report.names
    named = {"country": country_name, "language": language_name}.get(section)
    if named is None:
        return {}
    return {g.key: named(g.key, language) for g in _groups(report, section) if g.key}


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


def clip(text: str, columns: int) -> str:
    """`text` cut to `columns` terminal columns, with an ellipsis where it was cut."""
    if width(text) <= columns:
        return text
    out, used = "", 0
    for ch in text:
        w = width(ch)
        if used + w > columns - 1:
            break
        out, used = out + ch, used + w
    return out + "…"


def _fit(widths: list[int], limit: int | None, shrink: Sequence[int]) -> list[int]:
    """Narrow the `shrink` columns, widest first, until the line fits `limit` columns."""
    widths = list(widths)
    excess = sum(widths) + 2 * (len(widths) - 1) - limit if limit else 0
    while excess > 0:
        i = max(shrink, key=lambda k: widths[k])
        if widths[i] <= 6:
            break  # nothing sensible left to cut; the caller's columns are too many
        widths[i], excess = widths[i] - 1, excess - 1
    return widths


def align_table(header: Sequence[str], rows: Sequence[Sequence[str]], limit: int | None = None,
                shrink: Sequence[int] = (0,)) -> str:
    """Columns padded by display width; the first column left-aligned, figures right-aligned.
    With `limit`, the `shrink` columns (names, subjects) are cut so each line fits."""
    widths = _fit([max(width(r[i]) for r in [header, *rows]) for i in range(len(header))], limit, shrink)

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            cell = clip(cell, widths[i])
            pad = " " * (widths[i] - width(cell))
            out.append(cell + pad if i == 0 or i in shrink else pad + cell)
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


# --- headline and the list of slow inquiries -------------------------------------------------

LOWER_IS_BETTER = {"median": True, "p90": True, "within_sla": False, "open": True, "unassigned": True}


def _headline_value(name: str, value: float | int | None) -> str:
    if value is None:
        return "—"
    if name in ("median", "p90"):
        return duration(value)
    return f"{value:.1%}" if name == "within_sla" else str(value)


def _change(name: str, delta: float | None, lab: Mapping[str, str]) -> str:
    """The change with its direction as a sign: '+2', '-28.3m', '+3.0 pp'."""
    if delta is None:
        return "—"
    if delta == 0:
        return "±0"
    sign = "+" if delta > 0 else "-"
    if name in ("median", "p90"):
        return sign + duration(abs(delta))
    if name == "within_sla":
        return f"{sign}{abs(delta) * 100:.1f} {lab['pp']}"
    return f"{sign}{abs(delta):g}"


def verdict(name: str, delta: float | None) -> str:
    """'better', 'worse' or 'same', for the page's colours."""
    if not delta:
        return "same"
    return "better" if (delta < 0) == LOWER_IS_BETTER[name] else "worse"


def headline_rows(report: Report, language: str) -> list[dict[str, str]]:
    """Each headline figure: label, this period's value, the change, the previous value."""
    lab, h = labels(language), report.headlines
    if h is None:
        return []
    return [{"name": n, "label": lab["h_" + n], "value": _headline_value(n, getattr(h.current, n)),
             "change": _change(n, h.delta(n), lab), "previous": _headline_value(n, getattr(h.previous, n)),
             "verdict": verdict(n, h.delta(n))} for n in HEADLINES]


def previous_text(report: Report, tz: tzinfo) -> str:
    if report.headlines is None:
        return ""
    p = report.headlines.previous
    return f"{p.since.astimezone(tz):%Y-%m-%d %H:%M} – {p.until.astimezone(tz):%Y-%m-%d %H:%M}"


def headline_table(report: Report, language: str, tz: tzinfo) -> str:
    lab, rows = labels(language), headline_rows(report, language)
    table = align_table([lab["headline"], "", "±", lab["previous"]],
                        [[r["label"], r["value"], r["change"], r["previous"]] for r in rows])
    return f"{table}\n{lab['previous']}: {previous_text(report, tz)}\n{lab['waiting_note']}"


def _state(s: Slow, lab: Mapping[str, str]) -> str:
    if s.replied:
        return lab["s_replied"]
    return lab.get(f"s_{s.end_reason}", lab["s_open"]) if s.end_reason else lab["s_open"]


def slow_rows(report: Report, language: str, tz: tzinfo) -> list[list[str]]:
    """Rep by name; buyer and subject on one line (escaped by the page, neutralised in CSV)."""
    lab = labels(language)
    return [[report.names.get(s.rep, s.rep), one_line(s.buyer), one_line(s.subject),
             f"{s.assigned_at.astimezone(tz):%m-%d %H:%M}", duration(s.seconds), _state(s, lab)]
            for s in report.slowest]


SLOW_COLUMNS = ("s_rep", "s_buyer", "s_subject", "s_assigned", "s_time", "s_state")


# --- the text report ----------------------------------------------------------------------


def render_table(report: Report, language: str, tz: tzinfo) -> str:
    """Headline first, then per rep, the slow list, the other groupings; every line fits WIDTH."""
    lab = labels(language)
    view = [lab[c] for c in VIEW_COLUMNS]
    parts = [f"{lab['title']} — {lab['period']}: {period_text(report, tz)}",
             f"{lab['total']}: {report.total}   {lab['notes']}", "", headline_table(report, language, tz)]
    for section in SECTIONS:
        rows = group_rows(_groups(report, section), _names_for(report, section, language), VIEW_COLUMNS)
        if rows:
            parts += ["", lab[section], align_table(view, rows, WIDTH)]
        if section == "rep" and report.slowest:
            parts += ["", lab["slowest"], align_table([lab[c] for c in SLOW_COLUMNS],
                                                      slow_rows(report, language, tz), WIDTH, (0, 1, 2))]
    if report.fairness:
        parts += ["", lab["fairness"],
                  align_table([lab[c] for c in FAIRNESS_COLUMNS], fairness_rows(report), WIDTH, (0, 1))]
    parts += ["", lab["backlog"], backlog_text(report, tz, language)]
    return "\n".join(parts) + "\n"


# --- CSV and JSON -------------------------------------------------------------------------


def render_csv(report: Report, language: str) -> str:
    """One CSV with a `section` column; numbers raw (seconds, share as a fraction) for Excel."""
    lab = labels(language)
    out = io.StringIO()
    w = SafeWriter(out)
    w.writerow([lab["section"], *(lab[c] for c in GROUP_COLUMNS)])
    for section in SECTIONS:
        names = _names_for(report, section, language)
        for g in _groups(report, section):
            raw = _raw(g)
            raw["key"] = names.get(g.key, g.key)
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


class SafeWriter:
    """csv.writer for Excel: every text cell neutralised (buyers' subjects, rep names, keys)."""

    def __init__(self, out: io.StringIO) -> None:
        self._w = csv.writer(out, lineterminator="\r\n")

    def writerow(self, row: Sequence[Any]) -> None:
        self._w.writerow([neutralise(v) for v in row])


INQUIRY_COLUMNS = ("i_received", "s_rep", "i_team", "s_buyer", "s_subject", "i_country", "i_language",
                   "i_rule", "i_due", "i_first_reply", "i_business", "i_wall", "i_met", "i_end")


def _local(t: datetime | None, tz: tzinfo) -> str:
    return "" if t is None else f"{t.astimezone(tz):%Y-%m-%d %H:%M:%S}"


def _met(row: InquiryRow, lab: Mapping[str, str]) -> str:
    if row.due_at is None or row.first_reply_at is None:
        return ""
    return lab["yes"] if row.first_reply_at <= row.due_at else lab["no"]


def render_inquiries_csv(rows: Sequence[InquiryRow], names: Mapping[str, str], language: str,
                         tz: tzinfo) -> str:
    """One row per assignment, for Excel: UTF-8 with BOM (Chinese opens right), local times,
    seconds as numbers, names not ids, the buyer's text neutralised (SafeWriter)."""
    lab = labels(language)
    out = io.StringIO()
    w = SafeWriter(out)
    w.writerow([lab[c] for c in INQUIRY_COLUMNS])
    for r in rows:
        w.writerow([_local(r.assigned_at, tz), names.get(r.rep, r.rep), r.team or "", one_line(r.buyer),
                    one_line(r.subject), country_name(r.country, language), language_name(r.language, language),
                    r.rule or "", _local(r.due_at, tz), _local(r.first_reply_at, tz),
                    _csv_value(r.business_seconds), _csv_value(r.wall_seconds), _met(r, lab),
                    lab.get(f"s_{r.end_reason}", r.end_reason) if r.end_reason else ""])
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


def distribution(report: Report, language: str) -> Any:
    """Per rep, replies by speed and then the unanswered, so a rep with 15 assigned and 13
    unanswered shows a mostly grey bar of 15 (replies alone made them look fine)."""
    lab, empty = labels(language), (0,) * (len(HISTOGRAM_EDGES) + 1)
    rows = [(report.names.get(g.key, g.key), (*report.histogram.counts.get(g.key, empty), g.unanswered))
            for g in report.by_rep]
    return svg.distribution_bars(lab["chart_distribution"], rows,
                                 [*_bucket_labels(language), lab["unanswered"]],
                                 colours=(*svg.SPEED, svg.UNANSWERED))


def charts(report: Report, language: str, tz: tzinfo) -> list[Any]:
    """The charts below the slow list: volume per day by team, and the share within SLA."""
    lab = labels(language)
    days = [t.astimezone(tz).strftime("%m-%d") for t in report.series.starts]
    s = report.series
    shares = [met / due if due else None for met, due in zip(s.met_due, s.with_due)]
    return [
        (lab["chart_volume"], svg.stacked_columns(lab["chart_volume"], days,
                                                  [(t or "—", v) for t, v in s.volume_by_team.items()])),
        (lab["chart_sla"], svg.share_line(lab["chart_sla"], days, shares)),
    ]


def html_context(report: Report, language: str, tz: tzinfo) -> dict[str, Any]:
    lab = labels(language)
    sections = [(lab[s], group_rows(_groups(report, s), _names_for(report, s, language), VIEW_COLUMNS))
                for s in SECTIONS]
    return {
        "lab": lab, "period": period_text(report, tz), "total": report.total,
        "generated": report.generated_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        "headline": headline_rows(report, language), "previous": previous_text(report, tz),
        "headers": [lab[c] for c in VIEW_COLUMNS],
        "rep_rows": sections[0][1], "distribution": distribution(report, language),
        "slow_headers": [lab[c] for c in SLOW_COLUMNS], "slow_rows": slow_rows(report, language, tz),
        "sections": [(title, rows) for title, rows in sections[1:] if rows],
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
