"""Report formats: terminal table, CSV for Excel, JSON, and HTML rendered in headless Chromium."""
from __future__ import annotations

import csv
import io
import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.reports.figures import Report, Scope, compute_report
from mailrouter.reports.render import align_table, render_report, width
from tests.test_reports_fixture import NOW, PERIOD, make_db, report_config

CONFIG = report_config()


@pytest.fixture
def report(sessions: sessionmaker[Session], tmp_path: Path) -> Report:
    factory, _ = make_db(sessions)
    with factory() as session:
        return compute_report(session, Scope(PERIOD), NOW, tz=CONFIG.timezone,
                              members={t.id: t.members for t in CONFIG.teams.values()},
                              names={r.id: r.name for r in CONFIG.reps.values()})


def rendered(report: Report, fmt: str, language: str = "en") -> str:
    return render_report(report, fmt, language, CONFIG.timezone, CONFIG.template_dirs)


def test_width_counts_cjk_as_two_columns() -> None:
    assert width("张伟") == 4 and width("Li") == 2 and width("é") == 1


def test_table_columns_line_up_with_chinese_names() -> None:
    lines = align_table(["名称", "分配"], [["张伟", "7"], ["Li Na", "11"]]).splitlines()
    assert {width(line) for line in lines} == {width(lines[1])}
    assert lines[2] == "张伟      7"


def test_terminal_table_in_both_languages(report: Report) -> None:
    en, zh = rendered(report, "table"), rendered(report, "table", "zh")
    assert "By rep" in en and "张伟" in en and "Waiting for a person" in en
    assert "按业务员" in zh and "待人工处理" in zh


def test_csv_has_bom_and_round_trips(report: Report) -> None:
    data = rendered(report, "csv", "zh").encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    zhang = next(r for r in rows if r[1] == "张伟")
    header = rows[0]
    assert zhang[0] == "按业务员"
    assert zhang[header.index("中位数(工作)")] == "300.0" and zhang[header.index("P90(自然)")] == "4000.0"
    assert any(r[1:3] == ["europe", "张伟"] for r in rows)  # the fairness section


def test_json_parses(report: Report) -> None:
    data = json.loads(rendered(report, "json"))
    zhang = next(g for g in data["by_rep"] if g["key"] == "zhang")
    assert zhang["business"] == {"median": 300.0, "mean": 1060.0, "p90": 3700.0}
    assert data["scope"]["period"]["since"] == "2026-11-02T00:00:00+00:00"


def test_html_has_charts_and_escapes_hostile_names(report: Report) -> None:
    html = rendered(report, "html")
    assert html.count("<svg") == 3
    assert "<script" not in html.replace("&lt;script", "")
    assert "&lt;script&gt;alert(&#39;rep&#39;)&lt;/script&gt;陈" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing to fetch
    assert '<html lang="zh-CN">' in rendered(report, "html", "zh")


# --- headless Chromium ----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def png_pixels(path: Path, max_rows: int) -> tuple[int, list[bytes]]:
    """Decode the first rows of an 8-bit RGB/RGBA PNG with the stdlib (no Pillow needed)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        header = chunk if kind == b"IHDR" else header
        idat += chunk if kind == b"IDAT" else b""
        pos += 12 + length
    w, h, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    rows, prev = [], bytes(stride)
    for y in range(min(h, max_rows)):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        _unfilter(kind, line, prev, bpp)
        rows.append(bytes(line))
        prev = line
    return bpp, rows


def _unfilter(kind: int, line: bytearray, prev: bytes, bpp: int) -> None:
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + a) & 255
        elif kind == 2:
            line[i] = (line[i] + b) & 255
        elif kind == 3:
            line[i] = (line[i] + (a + b) // 2) & 255
        elif kind == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()],
        check=True, capture_output=True, timeout=120)


def first_row_with(rows: list[bytes], bpp: int, colour: str) -> int | None:
    pixel = bytes.fromhex(colour)
    return next((y for y, row in enumerate(rows)
                 if any(row[i:i + 3] == pixel for i in range(0, len(row), bpp))), None)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(report: Report, tmp_path: Path) -> None:
    """Issue 15 item 4 (e): headline cards first, above the per-rep table; charts drawn."""
    page = tmp_path / "report.html"
    page.write_text(rendered(report, "html", "zh"), encoding="utf-8")
    shot = tmp_path / "r.png"
    chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,2000")
    assert shot.exists()
    bpp, rows = png_pixels(shot, max_rows=1400)  # headline, per-rep table and the charts
    pixels = {row[i:i + 3] for row in rows for i in range(0, len(row), bpp)}
    assert len(pixels) > 50, "the page looks blank"
    for colour in ("1a9850", "9e9e9e", "2f6fb0", "4aa564"):  # fast, unanswered, team, SLA line
        assert bytes.fromhex(colour) in pixels, f"chart colour #{colour} not drawn"
    # The headline cards (#eaf2fb) are drawn, and above the first table header (#f0f4f9),
    # which is the per-rep table's.
    cards, header = first_row_with(rows, bpp, "eaf2fb"), first_row_with(rows, bpp, "f0f4f9")
    assert cards is not None and header is not None and cards < header
    # The same order in the laid-out DOM: the five headline figures, then the per-rep table.
    dom = chromium(page, tmp_path, "--dump-dom").stdout.decode("utf-8")
    order = [dom.index(text) for text in ("首次回复中位数", "首次回复P90", "按时回复率", "当前待回复",
                                          "待人工处理", 'id="by-rep"')]
    assert order == sorted(order)
