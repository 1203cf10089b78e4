"""Admin commands need only what they use: no mail password for commands that log in nowhere.

With the example config, every password environment variable unset and one mailbox reading
its password from $CREDENTIALS_DIRECTORY (set only while the systemd unit runs) and another
from a missing file, `status`, `report`, `overdue`, `rep`, `registry`, `suggest-rules` and
`explain` still run; `check`, which logs in, still names every secret it cannot read.
Before (issue 12): each of them stopped at "configuration has 3 problem(s)".
"""
from __future__ import annotations

from pathlib import Path

import pytest

from mailrouter.commands import cli
from mailrouter.config.credentials import CredentialError
from mailrouter.config.load import load_config
from mailrouter.testing.samples import demo_samples
from tests.factories import copy_example

SECRET_VARS = ("MAILROUTER_SALES_PASSWORD", "MAILROUTER_INFO_PASSWORD", "MAILROUTER_SMTP_PASSWORD",
               "CREDENTIALS_DIRECTORY")


@pytest.fixture
def no_secrets(tmp_path, monkeypatch) -> Path:
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    path = copy_example(tmp_path)
    text = path.read_text(encoding="utf-8")
    text = text.replace('password_env = "MAILROUTER_SALES_PASSWORD"',
                        'password_file = "$CREDENTIALS_DIRECTORY/sales-password"', 1)
    text = text.replace('password_env = "MAILROUTER_INFO_PASSWORD"', 'password_file = "no-such-file"', 1)
    path.write_text(text, encoding="utf-8")
    (tmp_path / "inquiry.eml").write_bytes(demo_samples()[0].raw)
    return path


ADMIN_COMMANDS = [
    ["status"], ["report"], ["overdue"], ["rep", "list"], ["rep", "away", "li", "--until", "2030-01-01"],
    ["rep", "back", "li"], ["registry", "export"], ["registry", "show", "buyer@acme.de"],
    ["suggest-rules"], ["explain", "inquiry.eml"],
]


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=" ".join)
def test_admin_command_runs_without_any_mail_secret(no_secrets, command, capsys, monkeypatch):
    monkeypatch.chdir(no_secrets.parent)
    rc = cli.main(["-c", str(no_secrets), *command])
    out = capsys.readouterr()
    assert "configuration has" not in out.err, out.err
    assert rc == 0 or (command[:2] == ["registry", "show"] and "registry:" in out.err), out.err


def test_commands_that_log_in_still_name_every_secret_they_cannot_read(no_secrets, capsys):
    assert cli.main(["-c", str(no_secrets), "check"]) == 2
    err = capsys.readouterr().err
    assert "mailbox[0].password_file: uses $CREDENTIALS_DIRECTORY" in err
    assert "mailbox[1].password_file: cannot read" in err
    assert "smtp.password_env: environment variable MAILROUTER_SMTP_PASSWORD is not set" in err


def test_a_deferred_secret_is_read_on_use_and_names_its_key(no_secrets, monkeypatch):
    config = load_config(no_secrets, resolve_secrets=False)
    assert not config.secrets_resolved
    with pytest.raises(CredentialError, match=r"smtp\.password_env: environment variable"):
        config.smtp.server.credentials.get()
    monkeypatch.setenv("MAILROUTER_SMTP_PASSWORD", "late")
    assert config.smtp.server.credentials.get() == "late"


def test_rep_away_refuses_a_date_in_the_past(no_secrets, capsys, monkeypatch):
    """Review (users): `rep away --until` accepted a past date and silently changed nothing."""
    monkeypatch.chdir(no_secrets.parent)
    with pytest.raises(SystemExit, match="is in the past"):
        cli.main(["-c", str(no_secrets), "rep", "away", "li", "--until", "2020-01-01"])
    assert cli.main(["-c", str(no_secrets), "rep", "list"]) == 0
    assert "li" not in capsys.readouterr().out
