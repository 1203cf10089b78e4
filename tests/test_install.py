"""Installing as a service: packaged files, state and template folders, credentials, `unit`."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mailrouter.act.templating import make_environment, render
from mailrouter.commands.cli import main
from mailrouter.commands.unit import config_secrets, dropin, init_config_dir
from mailrouter.config import paths
from mailrouter.config.load import load_config
from mailrouter.resources import packaged
from mailrouter.runtime.preflight import config_findings, template_problem
from mailrouter.sla.webhook import webhook_from_config
from tests.factories import EXAMPLE_ENV, ROOT, copy_example


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("mailrouter 0.")


def test_packaged_files_are_found_from_a_checkout() -> None:
    assert (packaged("templates") / "zh" / "forward.txt.j2").is_file()
    assert (packaged("rules") / "50-routing.toml").is_file()
    assert (packaged("systemd") / "mailrouter.service").is_file()
    assert packaged("config.toml").read_text(encoding="utf-8").startswith("# mailrouter configuration")


def test_under_systemd_database_and_spool_go_to_the_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = load_config(copy_example(tmp_path), environ={**EXAMPLE_ENV, "STATE_DIRECTORY": str(state)})
    assert config.database == f"sqlite:///{state / 'mailrouter.db'}"
    assert config.spool_dir == state / "spool"


def test_without_systemd_the_state_stays_beside_the_config(tmp_path: Path) -> None:
    config = load_config(copy_example(tmp_path), environ=EXAMPLE_ENV)
    assert config.database == f"sqlite:///{tmp_path / 'mailrouter.db'}"
    # a root shell with the unit's config finds the unit's database (status, report, check)
    assert paths.state_dir(Path("/etc/mailrouter"), {}) == Path("/var/lib/mailrouter")


def test_a_database_in_the_config_wins_over_the_state_directory(tmp_path: Path) -> None:
    path = copy_example(tmp_path)
    path.write_text(path.read_text().replace("[daemon]\n", '[daemon]\ndatabase = "sqlite:///here.db"\n', 1))
    config = load_config(path, environ={**EXAMPLE_ENV, "STATE_DIRECTORY": str(tmp_path / "s")})
    assert config.database == f"sqlite:///{tmp_path / 'here.db'}"


def test_templates_beside_the_config_override_the_packaged_ones_file_by_file(tmp_path: Path) -> None:
    override = tmp_path / "templates" / "en"
    override.mkdir(parents=True)
    (override / "notice_remind.txt.j2").write_text("OURS {{ rep_name }}\n")
    config = load_config(copy_example(tmp_path), environ=EXAMPLE_ENV)
    assert config.template_dirs == ((tmp_path / "templates").resolve(), packaged("templates").resolve())
    env = make_environment(config.template_dirs)
    assert render(env, "notice_remind.txt.j2", "en", rep_name="Li") == "OURS Li\n"
    assert env.get_template("zh/notice_remind.txt.j2").filename.startswith(str(packaged("templates").resolve()))


def test_check_names_a_template_that_does_not_compile(tmp_path: Path) -> None:
    broken = tmp_path / "templates" / "zh"
    broken.mkdir(parents=True)
    (broken / "forward.txt.j2").write_text("line one\n{% if x %}never closed\n")
    problem = template_problem(load_config(copy_example(tmp_path), environ=EXAMPLE_ENV))
    assert problem is not None and "zh/forward.txt.j2, line 2" in problem
    assert template_problem(load_config(ROOT / "config.toml", environ=EXAMPLE_ENV)) is None


def test_sla_without_a_reply_source_needs_saying_so(tmp_path: Path) -> None:
    path = copy_example(tmp_path)  # the example enables the clock and has no [[reply_source]]
    (finding,) = config_findings(load_config(path, environ=EXAMPLE_ENV))
    assert "no [[reply_source]]" in finding.error and "sla.allow_no_reply_source" in finding.error
    text = path.read_text()
    path.write_text(text.replace("allow_no_reply_source = false", "allow_no_reply_source = true"))
    assert config_findings(load_config(path, environ=EXAMPLE_ENV)) == []
    path.write_text(text.replace("[sla]\nenabled = true\n", "[sla]\nenabled = false\n"))
    assert config_findings(load_config(path, environ=EXAMPLE_ENV)) == []


def test_a_webhook_url_without_a_host_is_refused() -> None:
    _, problems = webhook_from_config({"name": "x", "url_env": "U"}, "config.toml", "sla.webhook[0].",
                                      {"U": "https:///nohost?key=secret"})
    (problem,) = problems
    assert problem.key == "sla.webhook[0].url_env" and "no host name" in problem.message
    assert "secret" not in problem.message


SERVICE_CONFIG = """
[[mailbox]]
name = "sales"
password_file = "$CREDENTIALS_DIRECTORY/sales-password"
[[mailbox]]
name = "info"
password_env = "INFO_PW"
[smtp]
password_file = "${CREDENTIALS_DIRECTORY}/smtp"
[[reply_source]]
kind = "rep_mailbox"
rep = "zhang"
password_file = "/etc/mailrouter/zhang.pw"
[[reply_source]]
kind = "journal"
auth = "xoauth2"
oauth2_refresh_token_file = "$CREDENTIALS_DIRECTORY/journal-token"
oauth2_client_secret_env = "SECRET"
[[reply_source]]
kind = "shared_sent"
mailbox = "sales"
[[sla.webhook]]
name = "wecom group"
url_env = "WECOM"
"""


def test_unit_drop_in_has_one_credential_per_secret(tmp_path: Path) -> None:
    text = dropin(tomllib.loads(SERVICE_CONFIG), tmp_path / "config.toml", "/opt/mailrouter/bin/mailrouter")
    credentials = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("LoadCredential=")]
    store = tmp_path / "credentials"
    assert credentials == [f"{name}:{store / name}" for name in (
        "sales-password", "info-password", "smtp", "reply-zhang-password",
        "reply-journal-oauth2-client-secret", "journal-token", "webhook-wecom-group-url")]
    assert f"ExecStart=/opt/mailrouter/bin/mailrouter -c {tmp_path / 'config.toml'} run" in text
    assert text.index("check") < text.index("ExecReload=/bin/kill -HUP $MAINPID")
    # keys that do not read the credential yet say what to write instead
    advice = {s.key: s.advice for s in config_secrets(tomllib.loads(SERVICE_CONFIG)) if s.advice}
    assert set(advice) == {"mailbox[1].password_env", "reply_source[0].password_file",
                           "reply_source[1].oauth2_client_secret_env", "sla.webhook[0].url_env"}
    assert '"$CREDENTIALS_DIRECTORY/info-password"' in advice["mailbox[1].password_env"]


def test_unit_warns_of_state_the_sandbox_cannot_write(tmp_path: Path) -> None:
    """review R3: a copied config with its database beside it in /etc/mailrouter"""
    data = {"daemon": {"database": "sqlite:///mailrouter.db", "spool_dir": "/var/lib/mailrouter/big"}}
    text = dropin(data, Path("/etc/mailrouter/config.toml"), "/bin/true")
    assert ("# daemon.database: the service may write only /var/lib/mailrouter, not "
            "/etc/mailrouter/mailrouter.db; leave daemon.database out") in text
    assert "daemon.spool_dir" not in text


def test_state_directory_also_holds_the_spool_of_a_server_database(tmp_path: Path) -> None:
    path = copy_example(tmp_path)
    path.write_text(path.read_text().replace(
        "[daemon]\n", '[daemon]\ndatabase = "postgresql+psycopg://mailrouter@localhost/mailrouter"\n', 1))
    config = load_config(path, environ={**EXAMPLE_ENV, "STATE_DIRECTORY": str(tmp_path / "state")})
    assert config.spool_dir == tmp_path / "state" / "spool"


def test_unit_command_needs_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init_config_dir(tmp_path)  # no credential file exists yet
    assert main(["-c", str(tmp_path / "config.toml"), "unit"]) == 0
    out, err = capsys.readouterr()
    assert f"LoadCredential=sales-password:{tmp_path}/credentials/sales-password" in out
    assert "info-password" in out and "smtp-password" in out and "# mailbox" not in out
    assert err == ""  # init's config needs no change to run under the unit
    assert main(["-c", str(ROOT / "config.toml"), "unit"]) == 0  # the example reads the environment
    assert "mailrouter unit: mailbox[0].password_env: the unit passes no environment" in capsys.readouterr().err


def test_a_root_shell_reads_the_credentials_the_unit_hands_over(tmp_path: Path) -> None:
    """`check` (and every command) outside systemd reads credentials/ beside the config:
    the files LoadCredential= copies for the service (review R1)."""
    init_config_dir(tmp_path)
    store = tmp_path / "credentials"
    for name, secret in (("sales-password", "s3"), ("info-password", "i3"), ("smtp-password", "p3")):
        (store / name).write_text(secret + "\n")
        (store / name).chmod(0o600)
    config = load_config(tmp_path / "config.toml", environ={})
    assert [m.server.credentials.get() for m in config.mailboxes] == ["s3", "i3"]
    assert config.smtp.server.credentials.get() == "p3"
    # under the unit, $CREDENTIALS_DIRECTORY (systemd's copy) is read instead
    unit_copy = tmp_path / "run"
    unit_copy.mkdir()
    for name in ("sales-password", "info-password", "smtp-password"):
        (unit_copy / name).write_text("from-systemd")
        (unit_copy / name).chmod(0o400)  # as LoadCredential= leaves them
    config = load_config(tmp_path / "config.toml", environ={"CREDENTIALS_DIRECTORY": str(unit_copy)})
    assert config.mailboxes[0].server.credentials.get() == "from-systemd"


def test_init_keeps_existing_files(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("# mine\n")
    written = init_config_dir(tmp_path)
    assert (tmp_path / "config.toml").read_text() == "# mine\n"
    assert tmp_path / "rules" / "50-routing.toml" in written
    assert (tmp_path / "credentials").stat().st_mode & 0o777 == 0o700
    assert init_config_dir(tmp_path) == []


def test_webhook_url_file_reads_the_credential_unit_names(tmp_path: Path) -> None:
    """`unit` tells a webhook to use url_file = "$CREDENTIALS_DIRECTORY/…": that must work
    under systemd and from a root shell (security D12: it was opened literally)."""
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "webhook-group-url").write_text("https://qyapi.weixin.qq.com/x?key=k\n")
    raw = {"name": "group", "format": "wecom", "url_file": "$CREDENTIALS_DIRECTORY/webhook-group-url"}
    target, problems = webhook_from_config(raw, str(tmp_path / "config.toml"), "sla.webhook[0].", {})
    assert problems == [] and target is not None and target.url.endswith("key=k")
