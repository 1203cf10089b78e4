"""Command output language: daemon.language is the default, --language overrides it (issue 15 item 6)."""
from __future__ import annotations

from pathlib import Path

import pytest

from mailrouter.commands.cli import main
from mailrouter.config.load import ConfigError, load_config
from tests.factories import EXAMPLE_ENV, copy_example


def with_language(tmp_path: Path, value: str) -> Path:
    path = copy_example(tmp_path)
    text = path.read_text(encoding="utf-8").replace("[daemon]\n", f'[daemon]\nlanguage = "{value}"\n', 1)
    text = text.replace('# database = "sqlite:////var/lib/mailrouter/mailrouter.db"',
                        f'database = "sqlite:///{tmp_path / "m.db"}"')
    path.write_text(text, encoding="utf-8")
    return path


def test_an_unknown_language_names_file_key_and_choices(tmp_path: Path) -> None:
    path = with_language(tmp_path, "fr")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=EXAMPLE_ENV)
    assert any(str(path) in str(p) and "daemon.language" in str(p) and "en, zh" in str(p)
               for p in info.value.problems)


def test_status_follows_the_config_unless_told(tmp_path: Path, capsys, monkeypatch) -> None:
    path = with_language(tmp_path, "zh")
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["-c", str(path), "status"]) == 0
    assert capsys.readouterr().out.startswith("mailrouter 状态（")
    assert main(["-c", str(path), "status", "--language", "en"]) == 0
    assert capsys.readouterr().out.startswith("mailrouter status at ")


def test_explain_labels_follow_the_config_unless_told(tmp_path: Path, capsys) -> None:
    from mailrouter.testing.samples import GERMAN, compose

    path = with_language(tmp_path, "zh")
    eml = tmp_path / "inquiry.eml"
    eml.write_bytes(compose("Klaus Becker <k.becker@becker-elektronik.de>", "Anfrage Leiterplatten", GERMAN))
    assert main(["-c", str(path), "explain", str(eml)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "主题：       Anfrage Leiterplatten" in lines  # CJK labels count two columns: values line up
    assert "标签：       [DE][PCB]（仅业务员可见）" in lines
    assert any(line.startswith("Message-ID： <") for line in lines)
    assert any(line.startswith("原因：       规则 'german-pcb'：国家 DE") for line in lines)  # worded in zh too
    assert main(["-c", str(path), "explain", str(eml), "--language", "en"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "Subject:    Anfrage Leiterplatten" in lines and "Labels:     [DE][PCB] (the rep's view only)" in lines


def test_rep_away_back_and_list_follow_the_config_unless_told(tmp_path: Path, capsys) -> None:
    path = with_language(tmp_path, "zh")
    assert main(["-c", str(path), "rep", "away", "li", "--until", "2099-01-01", "--note", "广交会"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("li 休假至 2099-01-01 23:59") and out.endswith("：不再分配新询盘")
    assert main(["-c", str(path), "rep", "list"]) == 0
    assert capsys.readouterr().out.strip() == "li：休假至 2099-01-01 23:59（广交会）"
    assert main(["-c", str(path), "rep", "list", "--language", "en"]) == 0
    assert capsys.readouterr().out.strip() == "li: away until 2099-01-01 23:59 (广交会)"
    with pytest.raises(SystemExit, match="已是过去"):
        main(["-c", str(path), "rep", "away", "li", "--until", "2020-01-01"])
    assert main(["-c", str(path), "rep", "back", "li"]) == 0
    assert capsys.readouterr().out.strip() == "li 已回来，重新接收新询盘"
    assert main(["-c", str(path), "rep", "list", "--language", "en"]) == 0
    assert capsys.readouterr().out.strip() == "nobody is away"


def test_db_current_upgrade_and_copy_follow_the_config_unless_told(tmp_path: Path, capsys) -> None:
    from mailrouter.migrations import head

    path = with_language(tmp_path, "zh")
    assert main(["-c", str(path), "db", "upgrade"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"m.db：数据库结构版本 {head()}（最新）")
    assert main(["-c", str(path), "db", "current", "--language", "en"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"m.db: schema at {head()} (current)")
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert main(["-c", str(path), "db", "copy", "--to", target]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  messages：0 行" in out and out[-1].startswith("已复制 ")
    assert main(["-c", str(path), "rep", "away", "li", "--until", "2099-01-01"]) == 0
    assert main(["-c", str(path), "db", "copy", "--to", target]) == 0  # the target now holds that row
    capsys.readouterr()
    assert main(["-c", str(path), "db", "copy", "--to", target]) == 1  # refused: never merged
    assert "db copy：目标数据库的 " in capsys.readouterr().err


def test_init_speaks_chinese_when_told(tmp_path: Path, capsys) -> None:
    assert main(["init", str(tmp_path / "etc"), "--language", "zh"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"已写入 {tmp_path / 'etc' / 'config.toml'}" in lines and lines[-1].startswith("下一步：编辑 ")
    assert main(["init", str(tmp_path / "etc2")]) == 0  # no config exists yet to name a language
    lines = capsys.readouterr().out.splitlines()
    assert f"wrote {tmp_path / 'etc2' / 'config.toml'}" in lines and lines[-1].startswith("next: edit ")


def test_unit_follows_the_config_unless_told(tmp_path: Path, capsys) -> None:
    path = with_language(tmp_path, "zh")  # the example reads passwords from the environment: notes follow
    assert main(["-c", str(path), "unit"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"# {path} 的 mailrouter.service drop-in，由 `mailrouter unit` 生成。"
    assert "mailrouter unit：mailbox[0].password_env：服务单元不传环境变量；请改写 password_file" in err
    assert "# mailbox[0].password_env：服务单元不传环境变量" in out
    assert main(["-c", str(path), "unit", "--language", "en"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"# mailrouter.service drop-in for {path}, written by `mailrouter unit`.")
    assert "mailrouter unit: mailbox[0].password_env: the unit passes no environment" in err


def test_a_config_that_does_not_load_is_reported_in_the_language_asked(tmp_path: Path, capsys) -> None:
    path = with_language(tmp_path, "fr")  # daemon.language itself is wrong: only --language can choose
    assert main(["-c", str(path), "rep", "list", "--language", "zh"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("配置有 1 个问题：\n") and "daemon.language" in err  # the problem keeps file and key
    assert main(["-c", str(path), "rep", "list"]) == 2
    assert capsys.readouterr().err.startswith("configuration has 1 problem(s):\n")


def test_registry_import_show_and_transfer_follow_the_config_unless_told(tmp_path: Path, capsys) -> None:
    """Issue 15 item 6: the registry commands printed English whatever daemon.language said."""
    path = with_language(tmp_path, "zh")
    sheet = tmp_path / "fair.csv"
    sheet.write_text("姓名,公司,电话,邮箱,国家\nMaria Rossi,Rossi S.r.l.,+39 02 1234 5678,maria@rossi.it,意大利\n"
                     "Bad,Bad Co,,nope@,德国\n", encoding="utf-8")
    assert main(["-c", str(path), "registry", "import", str(sheet), "--source", "广交会", "--owner", "zhang"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "广交会：新建 1，更新 0，未变 0，跳过 0，无效 1"
    assert "无效行：" in lines and "  第 3 行：邮箱地址无效 'nope@'" in lines
    assert any(line.startswith("列：") and "email ← 邮箱" in line for line in lines)

    assert main(["-c", str(path), "registry", "show", "rossi.it"]) == 0
    shown = capsys.readouterr().out
    assert "  负责人：" in shown and "  状态：" in shown and "询盘：无" in shown
    assert "owner:" not in shown

    assert main(["-c", str(path), "registry", "transfer", "--from", "zhang", "--to", "wang", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["将从 zhang 转给 wang 的客户 1 个（试运行：未做任何更改）",
                   "  Rossi S.r.l. Maria Rossi <maria@rossi.it> IT"]
    assert main(["-c", str(path), "registry", "transfer", "--from", "zhang", "--to", "wang", "--dry-run",
                 "--language", "en"]) == 0
    assert capsys.readouterr().out.startswith("would transfer 1 customer(s) from zhang to wang")
    assert main(["-c", str(path), "registry", "show", "nobody.example"]) == 1
    assert capsys.readouterr().err.startswith("registry：")


def test_explain_before_the_first_start_leaves_no_database_behind(tmp_path: Path, capsys) -> None:
    """explain reads the registry and team state when there is a database, and makes none."""
    from mailrouter.testing.samples import GERMAN, compose

    path = with_language(tmp_path, "en")
    eml = tmp_path / "inquiry.eml"
    eml.write_bytes(compose("Klaus Becker <k.becker@becker-elektronik.de>", "Anfrage Leiterplatten", GERMAN))
    assert main(["-c", str(path), "explain", str(eml)]) == 0
    assert "Decision:   routed -> zhang" in capsys.readouterr().out.splitlines()
    assert not (tmp_path / "m.db").exists()


@pytest.mark.parametrize("row, english, chinese", [
    ("Li,Li Co,,li@example.com,,", "is at our own mail domain", "是本公司自己的邮件域名"),
    ("Nobody,,,,,", "nothing to recognise the customer by", "没有可识别客户的信息"),
    ("Bo,Bo Co,12345,,,", "unparseable phone '12345' (no country column", "无法解析的电话 '12345'（没有国家列"),
    ("Ann,Ann Co,,ann@ann.example,,nobody", "unknown owner rep 'nobody'", "未知的负责业务员 'nobody'"),
    ("Cy,Cy Co,,cy@cy.example,paused,", "unknown status 'paused'", "未知状态 'paused'"),
])
def test_a_refused_rows_reason_speaks_the_commands_language(tmp_path: Path, capsys, row, english, chinese) -> None:
    """Issue 15 item 6: the summary was Chinese, the reason of each refused row still English."""
    path = with_language(tmp_path, "zh")
    sheet = tmp_path / "rows.csv"
    sheet.write_text(f"name,company,phone,email,status,owner\n{row}\n", encoding="utf-8")
    for language, wanted, unwanted in (("zh", chinese, english), ("en", english, chinese)):
        assert main(["-c", str(path), "registry", "import", str(sheet), "--source", "fair", "--dry-run", "--language", language]) == 0
        out = capsys.readouterr().out
        assert wanted in out and unwanted not in out, out
