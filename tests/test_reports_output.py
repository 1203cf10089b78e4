"""Issue 15 item 4: the text report fits 100 columns, and the CSVs are safe to open in Excel."""
from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.reports.figures import Period, Report, Scope, compute_report
from mailrouter.reports.inquiries import InquiryRow, inquiries
from mailrouter.reports.render import neutralise, render_csv, render_inquiries_csv, render_table, width
from tests.test_reports_headline import NOW, SINCE, UNTIL, populate

SHANGHAI = timezone(timedelta(hours=8))
LONG_CJK = "欧洲东部及中亚地区大客户部高级销售经理张伟伟伟伟伟伟伟伟伟伟伟伟伟伟伟伟"  # 41 wide chars
LONG_LATIN = "Maximilian-Alexander von Hohenzollern-Sigmaringen, Key Accounts DACH"
HOSTILE = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
           "\tTAB", "\rCR"]


@pytest.fixture
def report(sessions: sessionmaker[Session]) -> Report:
    with sessions() as session:
        populate(session)
        return compute_report(session, Scope(Period(SINCE, UNTIL)), NOW,
                              names={"zhang": LONG_CJK, "li": LONG_LATIN})


def test_text_report_fits_100_columns_with_long_and_cjk_names(report: Report) -> None:
    long = replace(report, slowest=tuple(replace(s, subject="询价：" + "不锈钢球阀" * 12,
                                                 buyer="purchasing.department." * 3 + "@example.de")
                                         for s in report.slowest))
    for language in ("en", "zh"):
        text = render_table(long, language, SHANGHAI)
        widest = max(text.splitlines(), key=width)
        assert width(widest) <= 100, widest
        assert "询价：不锈钢" in text and "欧洲东部" in text  # cut to fit, not dropped


def test_neutralise_follows_owasp() -> None:
    assert [neutralise(v) for v in HOSTILE] == ["'" + v for v in HOSTILE]
    assert neutralise("Klaus Becker") == "Klaus Becker" and neutralise(-2.5) == -2.5


def test_report_csv_neutralises_names(report: Report) -> None:
    hostile = replace(report, names={"zhang": HOSTILE[0], "li": HOSTILE[3]})
    rows = list(csv.reader(io.StringIO(render_csv(hostile, "en").removeprefix("\ufeff"))))
    cells = {cell for row in rows for cell in row}
    assert "'" + HOSTILE[0] in cells and "'" + HOSTILE[3] in cells
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells)


def test_inquiries_csv_one_row_per_assignment(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        populate(session)
        rows = inquiries(session, SINCE, UNTIL)
    # a1..a12 are this period's 12 assignments (the module docstring of test_reports_headline)
    assert len(rows) == 12
    data = render_inquiries_csv(rows, {"zhang": "张伟", "li": "Li Na"}, "zh", SHANGHAI)
    assert data.encode("utf-8").startswith(b"\xef\xbb\xbf")  # Excel then reads UTF-8 (Chinese)
    table = list(csv.reader(io.StringIO(data.removeprefix("\ufeff"))))
    header, first = table[0], table[1]
    assert header[:3] == ["分配时间", "业务员", "团队"]
    # a1: given 11-09 01:00 UTC = 09:00 in Shanghai, to zhang, replied in 60 s, within SLA
    assert first[:2] == ["2026-11-09 09:00:00", "张伟"]
    assert first[header.index("工作时间(秒)")] == "60.0" and first[header.index("按时")] == "是"
    pooled = next(r for r in table if r[header.index("主题")] == "Inquiry m5")
    assert pooled[header.index("结束")] == "已退回" and pooled[header.index("按时")] == ""


def test_inquiries_csv_escapes_customer_text() -> None:
    at = datetime(2026, 11, 9, 1, tzinfo=timezone.utc)
    rows = [InquiryRow(at, "zhang", "europe", buyer, subject, "DE", "de", "germany", None, None,
                       None, None, None)
            for buyer, subject in zip(HOSTILE, ["询价：不锈钢阀门\r\nBcc: x@evil.example", *HOSTILE[1:]])]
    table = list(csv.reader(io.StringIO(render_inquiries_csv(rows, {}, "en", SHANGHAI)
                                        .removeprefix("\ufeff"))))
    body = [cell for row in table[1:] for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in body)
    assert table[1][4] == "询价：不锈钢阀门 Bcc: x@evil.example"  # one line
    assert table[1][5:7] == ["Germany", "German"]


def test_report_command_writes_the_inquiries_csv(tmp_path, monkeypatch) -> None:
    from mailrouter.commands import cli
    from tests.factories import copy_example

    config = copy_example(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out" / "inquiries.csv"
    assert cli.main(["-c", str(config), "report", "--format", "inquiries", "--language", "zh",
                     "--output", str(out)]) == 0
    assert out.read_bytes().startswith("\ufeff分配时间,业务员,团队,客户,主题".encode("utf-8"))


def test_a_rep_with_no_reply_shows_in_the_chart(sessions: sessionmaker[Session]) -> None:
    """The review's 'Li Na looks fine': the per-rep chart counted only replies. 11-11 00:00 to
    02:00 holds only a5, Li Na's pooled inquiry: her bar is one unanswered assignment."""
    from mailrouter.reports.render import render_report
    from tests.test_reports_fixture import report_config

    config = report_config()
    with sessions() as session:
        populate(session)
        only_a5 = compute_report(session, Scope(Period(datetime(2026, 11, 11, tzinfo=timezone.utc),
                                                       datetime(2026, 11, 11, 2, tzinfo=timezone.utc))),
                                 NOW, names={"li": "Li Na", "zhang": LONG_CJK})
    html = render_report(only_a5, "html", "en", SHANGHAI, config.template_dirs)
    assert "<title>Li Na: Unanswered: 1</title>" in html


def test_slow_list_escapes_the_buyers_text_on_the_page(sessions: sessionmaker[Session]) -> None:
    from mailrouter.reports.render import render_report
    from tests.test_reports_fixture import HOSTILE_CUSTOMER, NOW as FIXTURE_NOW, PERIOD, make_db, report_config

    config = report_config()
    make_db(sessions)
    with sessions() as session:
        report = compute_report(session, Scope(PERIOD), FIXTURE_NOW, names={r.id: r.name for r in config.reps.values()})
    assert any(s.buyer == HOSTILE_CUSTOMER for s in report.slowest)  # z7 is unanswered
    html = render_report(report, "html", "en", SHANGHAI, config.template_dirs)
    assert "&#34;&lt;img src=x onerror=alert(1)&gt;&#34;@evil.example" in html and "<img" not in html
