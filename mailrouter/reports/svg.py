"""Inline SVG charts for the HTML report: drawn here so the file needs no script or network.

Every text that reaches the SVG goes through `escape` (rep names come from config and mail).
"""
from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

PALETTE = ("#2f6fb0", "#4aa564", "#e0a030", "#d0583a", "#8a5cc2", "#3aa9b5", "#b0487f", "#7a7a7a")
# From fast to slow: green to red, so the distribution bars read at a glance.
SPEED = ("#1a9850", "#91cf60", "#d9ef8b", "#fee08b", "#fc8d59", "#d73027", "#7f0000")
UNANSWERED = "#9e9e9e"  # grey: no reply at all, after the slowest red
FONT = 'font-family="sans-serif" font-size="12"'


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT} {extra}>{escape(text)}</text>'


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str = "") -> str:
    tip = f"<title>{escape(title)}</title>" if title else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" fill="{fill}">{tip}</rect>'


def _svg(width: int, height: int, label: str, parts: list[str]) -> Markup:
    body = "".join(parts)
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                  f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">{body}</svg>')


def _columns(text: str) -> int:
    """Character cells: CJK takes two, so a Chinese legend entry gets the room it needs."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _clip(text: str, columns: int) -> str:
    """Cut to `columns` character cells (CJK names are twice as wide), marking the cut."""
    out = ""
    for ch in text:
        if _columns(out + ch) > columns - 1:
            return out + "…"
        out += ch
    return out


def _legend(x: float, y: float, labels: Sequence[str], colours: Sequence[str]) -> list[str]:
    parts, cx = [], x
    for label, colour in zip(labels, colours):
        parts += [_rect(cx, y - 10, 12, 12, colour), _text(cx + 16, y, label)]
        cx += 28 + 7 * _columns(label)
    return parts


def distribution_bars(label: str, rows: Sequence[tuple[str, Sequence[int]]],
                      bucket_labels: Sequence[str], width: int = 900,
                      colours: Sequence[str] = SPEED) -> Markup:
    """One 100% stacked bar per rep: how their assignments spread over the buckets."""
    left, bar_h, gap, top = 160, 22, 8, 30
    plot_w = width - left - 60
    parts = _legend(left, 16, bucket_labels, colours)
    for i, (name, counts) in enumerate(rows):
        y = top + i * (bar_h + gap)
        total, x = sum(counts), float(left)
        parts.append(_text(left - 8, y + 15, _clip(name, 20), "end"))
        for j, n in enumerate(counts):
            w = plot_w * n / total if total else 0
            parts.append(_rect(x, y, w, bar_h, colours[j % len(colours)], f"{name}: {bucket_labels[j]}: {n}"))
            x += w
        parts.append(_text(left + plot_w + 6, y + 15, str(total)))
    return _svg(width, top + len(rows) * (bar_h + gap) + 10, label, parts)


def stacked_columns(label: str, x_labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]],
                    width: int = 900, height: int = 260) -> Markup:
    """Columns per day, stacked by team (colour per team)."""
    left, right, top, bottom = 40, 10, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s[1][i] for s in series) for i in range(len(x_labels))]
    peak = _nice_peak(max(totals, default=0))
    step = plot_w / max(len(x_labels), 1)
    parts = _legend(left, 16, [name for name, _ in series], PALETTE)
    parts += _y_axis(left, top, plot_w, plot_h, peak, lambda v: str(round(v)))
    for i, x_label in enumerate(x_labels):
        y: float = top + plot_h
        for k, (name, values) in enumerate(series):
            h = plot_h * values[i] / peak
            y -= h
            parts.append(_rect(left + i * step + step * 0.15, y, step * 0.7, h,
                               PALETTE[k % len(PALETTE)], f"{x_label} {name}: {values[i]}"))
        parts.append(_x_label(i, left + (i + 0.5) * step, top + plot_h, x_label, len(x_labels)))
    return _svg(width, height, label, parts)


def share_line(label: str, x_labels: Sequence[str], shares: Sequence[float | None],
               width: int = 900, height: int = 240) -> Markup:
    """A line of the SLA-met share (0-100 %); buckets with nothing due leave a gap."""
    left, right, top, bottom = 44, 10, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(x_labels), 1)
    parts = _y_axis(left, top, plot_w, plot_h, 1.0, lambda v: f"{v:.0%}")
    points: list[tuple[float, float] | None] = []
    for i, share in enumerate(shares):
        parts.append(_x_label(i, left + (i + 0.5) * step, top + plot_h, x_labels[i], len(x_labels)))
        if share is None:
            points.append(None)
            continue
        x, y = left + (i + 0.5) * step, top + plot_h * (1 - share)
        points.append((x, y))
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{PALETTE[1]}">'
                     f'<title>{escape(x_labels[i])}: {share:.0%}</title></circle>')
    for run in _runs(points):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{PALETTE[1]}" stroke-width="2"/>')
    return _svg(width, height, label, parts)


def _runs(points: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = [[]]
    for p in points:
        if p is None:
            runs.append([])
        else:
            runs[-1].append(p)
    return [r for r in runs if len(r) > 1]


def _nice_peak(value: int) -> int:
    """A top for a count axis whose four gridlines fall on whole numbers."""
    return max(4, math.ceil(value / 4) * 4)


def _y_axis(left: float, top: float, plot_w: float, plot_h: float, peak: float,
            fmt: Callable[[float], str]) -> list[str]:
    parts = []
    for k in range(5):
        value = peak * k / 4
        y = top + plot_h * (1 - k / 4)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(_text(left - 4, y + 4, fmt(value), "end", 'fill="#555"'))
    return parts


def _x_label(i: int, x: float, y: float, text: str, count: int) -> str:
    """Every label when few, otherwise every n-th so that they do not overlap."""
    if i % math.ceil(count / 16):
        return ""
    return _text(x, y + 16, text, "middle", 'fill="#555"')
