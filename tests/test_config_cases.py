"""`check` on every broken config of the security review: file, key and reason, no traceback.

The cases are in tests/config_cases.py (copied from shared/reviews/security-tools). `check`
runs in-process with its server logins stubbed out: what is tested is the reading of the
files, and a config that reads cleanly would go on to the logins.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from mailrouter.commands import cli
from tests import config_cases as cases

REPO = Path(__file__).resolve().parents[1]
ENV = {"MAILROUTER_SALES_PASSWORD": "pw1", "MAILROUTER_INFO_PASSWORD": "pw2",
       "MAILROUTER_SMTP_PASSWORD": "pw3"}
PROBLEM_LINE = re.compile(r"^  (?P<file>/\S+): (?P<key>\S.*?): (?P<reason>.+)$")

# What each case must be refused for: a key fragment that must appear among the problems.
# None: the config is valid as far as reading goes (a concern of another part, e.g. file
# permissions or the logins, which `check` tries next; keywords are literal text, not patterns).
# 28 and 29 append a top-level key after the last table, so TOML puts it in that table.
EXPECTED: dict[str, str | None] = {
    "01-wrong-type-timezone": "daemon.timezone", "02-wrong-type-port": "mailbox[0].port",
    "03-typo-section-deamon": "deamon", "04-typo-key-pasword_env": "pasword_env",
    "05-typo-key-emial": "reps.li.emial", "06-typo-key-poll_intervall": "poll_intervall",
    "07-missing-smtp": "smtp", "08-missing-mailboxes": "mailbox",
    "09-regex-keyword": None, "10-unknown-rep-in-rule": "rep",
    "11-team-no-members": "teams.americas.members", "12-folder-no-rep": "folders.routed",
    "13-folder-imap-wildcards": "folders.unrecognized", "14-bad-timezone": "daemon.timezone",
    "15-bad-team-timezone": "hours.timezone", "16-bad-hours": "hours.hours",
    "17-bad-weekday-quiet": "hours.weekdays", "18-duplicate-rule-names": "name",
    "19-empty-config": "mailbox", "20-binary-garbage-config": "line",
    "21-latin1-config": "line", "22-rules-dir-missing": "daemon.rules_dir",
    "23-password-file-world-readable": "password_file", "24-password-file-missing": "password_file",
    "25-env-not-set": "mailbox[1].password_env", "26-mailbox-not-table": "mailboxx",
    "27-mailbox-array-of-strings": "mailbox[0]", "28-form-sender-string": "metrics.form_sender",
    "29-reply-source-string": "form_sender[1].reply_source", "30-webhook-string": "sla.webhook",
    "31-ladder-bad-step": "steps[2].kind", "32-rule-rep-and-team": "rep",
    "33-rule-file-bad-toml": "rules/60-audit.toml", "34-rule-file-binary": "rules/60-audit.toml",
    "35-rule-country-name-not-code": "country", "36-rule-language-name": "language",
    "37-rule-sender-domain-at": "sender_domain", "38-negative-intervals": "poll_interval",
    "39-port-out-of-range": "smtp.port", "40-retry-negative": "smtp.retry_initial",
    "41-tls-none-remote": "mailbox[0].tls", "42-team-hours-string": "teams.americas.hours",
    "43-digest-bad-time": "digest.daily", "44-metrics-bad": "metrics.port",
    "45-rep-email-bad": "reps.chen.email", "46-rep-id-uppercase": "reps.Chen",
    "47-rule-unknown-ladder": "ladder", "48-score-wrong-type": "registry.score.tier_a",
    "49-ladder-not-table": "sla.ladders.cold.foo", "50-database-bad-url": None,
    "51-database-dir-missing": "daemon.database", "52-template-dir-empty": None,
    "53-subject-format-unknown": "forward.labels", "54-keyword-prefix-space": "forward.keyword_prefix",
    "55-rep-email-is-shared-mailbox": "reps.chen.email", "56-rep-folder-traversal": "reps.zhang.folder",
    "57-team-id-equals-rep": "teams.chen", "58-password-inline": "mailbox[0].password",
    "59-password-command-empty": "mailbox[0].password_command", "60-auth-typo": "mailbox[0].auth",
    "61-oauth-http-url": "mailbox[0].oauth2_token_url", "62-credentials-dir-unset": "mailbox[0].password_file",
    "63-webhook-url-file-relative": "sla.x", "64-webhook-https-no-host": "webhook",
    "65-idle-renew-small": "mailbox[0].idle_renew", "66-extra-dates-string": "extra_holidays",
    "67-rule-keyword-empty": "keywords", "68-product-no-keywords": "products.EMPTY.keywords",
    "69-region-bad-code": "regions.bad", "70-rule-not-table": "rule",
    "71-rules-toml-unknown-top": "rules", "72-config-is-directory": "-",
    "73-mailbox-item-int": "mailbox[0]", "74-reps-not-table-item": "reps.li",
    "75-sla-ladder-unknown-key": "max_reasignments", "76-rule-sender-glob": "sender",
    "77-rule-recipient-bare": "recipient", "78-score-countries-bad": "registry.score.countries",
    "79-two-mailboxes-same-address": "mailbox[1].address", "80-subdivision-bad": "subdivision",
}


def example_copy(tmp_path: Path) -> Path:
    d = tmp_path / "case"
    shutil.copytree(REPO / "rules", d / "rules")
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    (d / "config.toml").write_text(re.sub(r'"(imap|smtp)\.example\.com"', '"127.0.0.1"', text), encoding="utf-8")
    return d


def run_check(config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
              env: dict[str, str]) -> tuple[int, str]:
    for name in ("MAILROUTER_SALES_PASSWORD", "MAILROUTER_INFO_PASSWORD", "MAILROUTER_SMTP_PASSWORD",
                 "HOOK", "PW", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("mailrouter.runtime.preflight.check_servers", lambda config, language="en": True)
    rc = cli.main(["-c", str(config), "check"])  # an exception here is the traceback a user would see
    out = capsys.readouterr()
    return rc, out.out + out.err


def assert_reported(rc: int, output: str, where: Path, expected: str | None) -> None:
    assert "Traceback" not in output
    if expected is None:
        assert rc in (0, 2), output
        return
    assert rc == 2, output
    problems = [PROBLEM_LINE.match(line) for line in output.splitlines()[1:]]
    assert problems and all(problems), output  # every line: file: key: reason
    assert all(m and m["file"].startswith(str(where)) and m["reason"].strip() for m in problems), output
    assert any(m and expected in m[0] for m in problems), output


@pytest.mark.parametrize("name,mutate,flag", cases.CASES_LIST, ids=[c[0] for c in cases.CASES_LIST])
def test_review_config_case_is_reported_with_file_and_key(name, mutate, flag, tmp_path, monkeypatch, capsys):
    d = example_copy(tmp_path)
    mutate(d)
    env = dict(ENV)
    config = d / "config.toml"
    if flag == "latin1":
        config.write_bytes(config.read_text().encode("latin-1", errors="replace"))
    elif flag == "noenv":
        env.pop("MAILROUTER_INFO_PASSWORD")
    elif flag == "hook-nohost":
        env["HOOK"] = "https:///path?key=SECRET"
    elif flag == "dir":
        config = d
    rc, output = run_check(config, monkeypatch, capsys, env)
    assert_reported(rc, output, d, EXPECTED[name])
    assert "SECRET" not in output and "hunter2" not in output


MIN_EXPECTED: dict[str, str] = {
    "top-form_sender-list-of-strings": "form_sender[0]", "top-reply_source-list-of-strings": "reply_source[0]",
    "top-reply_source-list-of-ints": "reply_source[0]", "sla-webhook-list-of-strings": "sla.webhook",
    "sla-webhook-name-int": "sla.webhook[0].name", "sla-ladders-string": "sla.ladders",
    "sla-ladder-steps-strings": "sla.ladders.x.steps[0]", "sla-ladder-step-after-int": "sla.ladders.x.steps[0].after",
    "teams-string": "teams", "team-hours-int": "teams.t.hours", "team-hours-hours-int": "teams.t.hours.",
    "reps-string": "reps", "folders-string": "folders", "score-countries-string": "registry.score.countries",
    "digest-int": "digest.daily", "classify-threshold-string": "classify.language_threshold",
    "daemon-string": "daemon", "extra-holidays-int": "teams.t.hours.extra_holidays",
    "mailbox-idle-string": "mailbox[0].idle", "command-timeout-huge": "mailbox[0].command_timeout",
    "sweep-negative": "sla.sweep_interval", "max-open-bool": "reps.li.max_open",
    "rule-keywords-int": "keywords", "rule-name-int": "name", "rule-free_mail-string": "free_mail",
    "rule-score_min-string": "score_min",
}


@pytest.mark.parametrize("name", sorted(cases.MIN_CASES))
def test_review_minimal_case_is_reported_with_file_and_key(name, tmp_path, monkeypatch, capsys):
    d = tmp_path / name
    (d / "rules").mkdir(parents=True)
    (d / "rules" / "r.toml").write_text(cases.MIN_RULES.get(name, ""))
    (d / "config.toml").write_text(cases.min_config(name))
    rc, output = run_check(d / "config.toml", monkeypatch, capsys, {"PW": "x"})
    assert_reported(rc, output, d, MIN_EXPECTED[name])
