"""`mailrouter check` against the test bed: every login, every template (issue 12, item 5)."""
from __future__ import annotations

from pathlib import Path

import pytest

from mailrouter.commands.cli import main
from mailrouter.commands.demo import rep_reply_sources, write_testbed_config
from mailrouter.testing.testbed import TestBed
from tests.factories import ROOT

pytestmark = pytest.mark.integration


def checked(bed: TestBed, workdir: Path, capsys: pytest.CaptureFixture[str],
            overrides: dict) -> tuple[int, str]:
    config = write_testbed_config(ROOT / "config.toml", bed, workdir, overrides)
    code = main(["--log-level", "ERROR", "-c", str(config), "check"])
    return code, capsys.readouterr().out


def sources(bed: TestBed, workdir: Path, password_file: Path) -> list[dict]:
    return rep_reply_sources(ROOT / "config.toml", bed, password_file)[:2]


def test_check_passes_with_every_login_right(bed: TestBed, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out = checked(bed, tmp_path, capsys, {"reply_source": sources(bed, tmp_path, tmp_path / "password")})
    assert code == 0, out
    assert out.count("reply source rep_mailbox:") == 2 and "FAILED" not in out


def test_check_fails_on_a_wrong_reply_source_password(bed: TestBed, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password")
    wrong.chmod(0o600)
    wrong.chmod(0o600)
    reply = sources(bed, tmp_path, tmp_path / "password")
    reply[1]["password_file"] = str(wrong)
    code, out = checked(bed, tmp_path, capsys, {"reply_source": reply})
    assert code == 1
    failed = [line for line in out.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and failed[0].startswith(f"reply source rep_mailbox:{reply[1]['rep']} ")
    assert "not-the-password" not in out


def test_check_fails_on_a_template_that_does_not_compile(bed: TestBed, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    overrides = tmp_path / "my-templates" / "en"
    overrides.mkdir(parents=True)
    (overrides / "notice_escalate.txt.j2").write_text("{{ rep_name }\n")
    code, out = checked(bed, tmp_path, capsys, {
        "reply_source": sources(bed, tmp_path, tmp_path / "password"),
        "forward": {"template_dir": str(tmp_path / "my-templates")}})
    assert code == 1
    (failed,) = [line for line in out.splitlines() if "FAILED" in line]
    assert failed.startswith("templates in ") and "en/notice_escalate.txt.j2, line 1" in failed


def test_check_refuses_the_clock_without_a_reply_source(bed: TestBed, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out = checked(bed, tmp_path, capsys, {})
    assert code == 1 and "first-reply clock: FAILED" in out
    code, out = checked(bed, tmp_path, capsys, {"sla": {"allow_no_reply_source": True}})
    assert code == 0, out


def test_check_speaks_the_configured_language_unless_told(bed: TestBed, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = write_testbed_config(ROOT / "config.toml", bed, tmp_path, {"daemon": {"language": "zh"}})
    code = main(["--log-level", "ERROR", "-c", str(config), "check"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0].startswith(f"{config}：正常 — ")
    assert "首次回复计时：失败 — sla.enabled = true 但没有任何 [[reply_source]]" in out
    assert f"SMTP {bed.host}:{bed.smtp_port}：正常" in out
    assert "  提示：新数据库：首次启动时创建" in out.splitlines()
    code = main(["--log-level", "ERROR", "-c", str(config), "check", "--language", "en"])
    out = capsys.readouterr().out
    assert code == 1 and "first-reply clock: FAILED — sla.enabled = true" in out
    assert f"SMTP {bed.host}:{bed.smtp_port}: OK" in out


def test_check_keeps_the_server_words_in_chinese(bed: TestBed, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password")
    wrong.chmod(0o600)
    reply = sources(bed, tmp_path, tmp_path / "password")
    reply[1]["password_file"] = str(wrong)
    config = write_testbed_config(ROOT / "config.toml", bed, tmp_path, {"reply_source": reply})
    code = main(["--log-level", "ERROR", "-c", str(config), "check", "--language", "zh"])
    out = capsys.readouterr().out
    (failed,) = [line for line in out.splitlines() if "失败" in line]
    assert code == 1 and failed.startswith(f"回复来源 rep_mailbox:{reply[1]['rep']}（")
    assert "AUTHENTICATIONFAILED" in failed or "Authentication failed" in failed, failed
