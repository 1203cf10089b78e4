"""`mailrouter demo`: a progress line and the table on stdout, the logs in a file it names."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from mailrouter.commands.cli import main
from tests.factories import ROOT


def test_demo_without_aiosmtpd_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("mailrouter.commands.demo", "mailrouter.testing.testbed"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    for name in [m for m in sys.modules if m.partition(".")[0] == "aiosmtpd"] + ["aiosmtpd"]:
        monkeypatch.setitem(sys.modules, name, None)  # what a production install looks like
    assert main(["-c", str(ROOT / "config.toml"), "demo"]) == 2
    assert "pip install 'mailrouter[demo]'" in capsys.readouterr().err


@pytest.mark.integration
def test_demo_prints_the_table_not_the_logs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(ROOT / "config.toml"), "demo"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # before: ~220 log lines, 145 of them the test SMTP server's protocol chatter
    lines = out.splitlines()
    assert lines[0].startswith("Demo: ") and re.search(r"All (\d+) copies handled in", lines[1])
    assert lines[3].split() == ["message", "decision", "rep", "filed", "in"]
    assert len(lines) < 50
    log = Path(re.search(r"logs in (\S+)$", lines[0]).group(1))
    text = log.read_text(encoding="utf-8")
    assert "mail.log" in text and " routed <" in text
    log.unlink()


@pytest.mark.integration
def test_demo_speaks_the_configured_language(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 15 item 6: daemon.language = "zh" gives the demo's lines and table in Chinese."""
    from tests.test_command_language import with_language

    assert main(["-c", str(with_language(tmp_path, "zh")), "demo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("演示：在 ") and re.search(r"全部 (\d+) 份已处理，用时", lines[1])
    assert lines[3].split() == ["邮件", "结果", "业务员", "归档到"]
    assert any("已分配" in line.split() for line in lines[5:])  # outcomes in Chinese too
    assert "业务员收件箱中的转发：" in lines
    Path(re.search(r"日志在 (\S+)$", lines[0]).group(1)).unlink()


def test_demo_table_aligns_chinese_headers_by_terminal_columns() -> None:
    from mailrouter.commands.demo import TableRow, format_table

    table = format_table([TableRow("german PCB [sales]", "routed", "zhang", "Routed/张伟", "")], "zh")
    head, _rule, row = table.splitlines()
    assert head.startswith("邮件") and "已分配" in row
    assert row.index("已分配") == head.index("结果") + 2  # 邮件 is 4 columns but 2 characters; row text is ASCII
