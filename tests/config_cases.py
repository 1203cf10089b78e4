"""Broken configurations from the security review (shared/reviews/security-tools/cfgcases.py and
mincases.py), copied so the tests stay self-contained. Each case mutates a copy of the example
config (hosts on 127.0.0.1, as in the review) or of a minimal one; the flag says how it is run.
Cases 50 and 51 edit the commented database line: the example no longer sets one.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

Mutate = Callable[[Path], None]


def sub(old: str, new: str, count: int = 1) -> Mutate:
    def f(d: Path) -> None:
        p = d / "config.toml"
        t = p.read_text()
        assert old in t, old
        p.write_text(t.replace(old, new, count))
    return f


def append(text: str, file: str = "config.toml") -> Mutate:
    def f(d: Path) -> None:
        p = d / file
        p.write_text((p.read_text() if p.exists() else "") + "\n" + text + "\n")
    return f


def write(file: str, data: str | bytes) -> Mutate:
    def f(d: Path) -> None:
        (d / file).write_bytes(data if isinstance(data, bytes) else data.encode())
    return f


def chain(*fs: Mutate) -> Mutate:
    def f(d: Path) -> None:
        for g in fs:
            g(d)
    return f


RULE = '\n[[rule]]\nname = "{n}"\n{body}\n'


def rule(name: str, body: str, file: str = "rules/60-audit.toml") -> Mutate:
    return append(RULE.format(n=name, body=body), file)


def pwfile(mode: int) -> Mutate:
    return chain(write("sales.pw", "pw1\n"), lambda d: os.chmod(d / "sales.pw", mode),
                 sub('password_env = "MAILROUTER_SALES_PASSWORD"', 'password_file = "sales.pw"'))


CASES_LIST = [
 ("01-wrong-type-timezone", sub('timezone = "Asia/Shanghai"                     #', 'timezone = 123 #'), None),
 ("02-wrong-type-port", sub('port = 993                                     #', 'port = "993" #'), None),
 ("03-typo-section-deamon", sub('[daemon]', '[deamon]'), None),
 ("04-typo-key-pasword_env", sub('password_env = "MAILROUTER_INFO_PASSWORD"', 'pasword_env = "MAILROUTER_INFO_PASSWORD"'), None),
 ("05-typo-key-emial", sub('email = "li@example.com"', 'emial = "li@example.com"'), None),
 ("06-typo-key-poll_intervall", sub('poll_interval = 30                             #', 'poll_intervall = 30 #'), None),
 ("07-missing-smtp", lambda d: (d/"config.toml").write_text(re.sub(r"\[smtp\].*?(?=\n# Reps)", "", (d/"config.toml").read_text(), flags=re.S)), None),
 ("08-missing-mailboxes", lambda d: (d/"config.toml").write_text(re.sub(r"\[\[mailbox\]\].*?(?=\n\[smtp\])", "", (d/"config.toml").read_text(), flags=re.S)), None),
 ("09-regex-keyword", rule("regexy", 'keywords = ["valve.*", "(["]\nrep = "li"'), None),
 ("10-unknown-rep-in-rule", rule("ghost", 'country = ["FR"]\nrep = "ghost"'), None),
 ("11-team-no-members", sub('members = ["chen", "li"]', 'members = []'), None),
 ("12-folder-no-rep", sub('routed = "Routed/{rep}"', 'routed = "Routed"'), None),
 ("13-folder-imap-wildcards", sub('unrecognized = "Unrecognized"', 'unrecognized = "Un*recog%nized"'), None),
 ("14-bad-timezone", sub('timezone = "Asia/Shanghai"                     #', 'timezone = "Mars/Olympus" #'), None),
 ("15-bad-team-timezone", sub('timezone = "Asia/Shanghai"                     # default: daemon', 'timezone = "Europe/Berln" #'), None),
 ("16-bad-hours", sub('hours = ["09:00-12:00", "13:30-18:00"]', 'hours = ["25:00-26:00", "18:00-09:00"]'), None),
 ("17-bad-weekday-quiet", chain(sub('weekdays = ["mon", "tue", "wed", "thu", "fri"]', 'weekdays = ["funday"]'), sub('quiet_hours = "22:00-07:00"', 'quiet_hours = "late"')), None),
 ("18-duplicate-rule-names", rule("europe", 'country = ["FR"]\nrep = "li"'), None),
 ("19-empty-config", write("config.toml", ""), None),
 ("20-binary-garbage-config", write("config.toml", bytes(range(256)) * 4), None),
 ("21-latin1-config", sub('name = "Li Na"', 'name = "Lü Na"') , "latin1"),
 ("22-rules-dir-missing", sub('rules_dir = "rules"', 'rules_dir = "no-such-rules"'), None),
 ("23-password-file-world-readable", pwfile(0o644), None),
 ("24-password-file-missing", sub('password_env = "MAILROUTER_SALES_PASSWORD"', 'password_file = "no-such.pw"'), None),
 ("25-env-not-set", lambda d: None, "noenv"),
 ("26-mailbox-not-table", sub('[[mailbox]]\nname = "info"', '[[mailboxx]]\nname = "info"'), None),
 ("27-mailbox-array-of-strings", write("config.toml", 'mailbox = ["sales"]\n[smtp]\nhost="127.0.0.1"\n[reps.a]\nemail="a@x.com"\n'), None),
 ("28-form-sender-string", chain(lambda d: (d/"config.toml").write_text((d/"config.toml").read_text().split("[[form_sender]]")[0]), append('form_sender = ["website"]')), None),
 ("29-reply-source-string", append('reply_source = ["zhang"]'), None),
 ("30-webhook-string", sub('[sla]\nenabled = true', '[sla]\nwebhook = ["https://x"]\nenabled = true'), None),
 ("31-ladder-bad-step", sub('{ kind = "reassign", after = "30m" }', '{ kind = "explode", after = "soon" }'), None),
 ("32-rule-rep-and-team", rule("both", 'country = ["FR"]\nrep = "li"\nteam = "europe"'), None),
 ("33-rule-file-bad-toml", write("rules/60-audit.toml", '[[rule]\nname = "x"\n'), None),
 ("34-rule-file-binary", write("rules/60-audit.toml", b"\xff\xfe\x00garbage\x80\x81"), None),
 ("35-rule-country-name-not-code", rule("de-name", 'country = ["Germany"]\nrep = "li"'), None),
 ("36-rule-language-name", rule("lang-name", 'language = ["german"]\nrep = "li"'), None),
 ("37-rule-sender-domain-at", rule("at-domain", 'sender_domain = ["@acme.de"]\nrep = "li"'), None),
 ("38-negative-intervals", chain(sub('poll_interval = 30                             #', 'poll_interval = -1 #'), sub('sweep_interval = 30                            #', 'sweep_interval = 0 #'), sub('timeout = 60                                   #', 'timeout = -5 #')), None),
 ("39-port-out-of-range", sub('port = 587', 'port = 70000'), None),
 ("40-retry-negative", chain(sub('retry_initial = 30                             #', 'retry_initial = -30 #'), sub('retry_deadline = 86400                         #', 'retry_deadline = -1 #')), None),
 ("41-tls-none-remote", chain(sub('host = "127.0.0.1"                      # required\ntls = "implicit"', 'host = "mail.example.com" #\ntls = "none"')), None),
 ("42-team-hours-string", sub('[teams.americas]\nmembers', '[teams.americas]\nhours = "09:00-18:00"\nmembers'), None),
 ("43-digest-bad-time", sub('daily = "08:30"', 'daily = "25:99"'), None),
 ("44-metrics-bad", chain(sub('port = 9464', 'port = "abc"'), sub('enabled = false\nhost = "127.0.0.1"', 'enabled = true\nhost = "0.0.0.0"')), None),
 ("45-rep-email-bad", sub('email = "chen@example.com"', 'email = "chen"'), None),
 ("46-rep-id-uppercase", sub('[reps.chen]', '[reps.Chen]'), None),
 ("47-rule-unknown-ladder", rule("lad", 'country = ["FR"]\nrep = "li"\nladder = "nope"'), None),
 ("48-score-wrong-type", sub('tier_a = 60 ', 'tier_a = "high" '), None),
 ("49-ladder-not-table", sub('[sla.ladders.cold]', '[sla.ladders.cold]\nfoo = 1\n[sla.ladders.empty]'), None),
 ("50-database-bad-url", sub('# database = "sqlite:////var/lib/mailrouter/mailrouter.db"', 'database = "postgresql+psycopg://mailrouter@localhost/mr"'), None),
 ("51-database-dir-missing", sub('# database = "sqlite:////var/lib/mailrouter/mailrouter.db"', 'database = "sqlite:////nonexistent/dir/mr.db"'), None),
 ("52-template-dir-empty", chain(lambda d: (d/"tpl").mkdir(), sub('# template_dir = "templates"', 'template_dir = "tpl"')), None),
 ("53-subject-format-unknown", sub('labels = "[{reinquiry}][{country}][{products}]"', 'labels = "[{contry}] {subject} {0}"'), None),
 ("54-keyword-prefix-space", sub('keyword_prefix = "mr-"', 'keyword_prefix = "mr x"'), None),
 ("55-rep-email-is-shared-mailbox", sub('email = "chen@example.com"', 'email = "sales@example.com"'), None),
 ("56-rep-folder-traversal", sub('folder = "张伟"', 'folder = "../INBOX"'), None),
 ("57-team-id-equals-rep", sub('[teams.americas]', '[teams.chen]'), None),
 ("58-password-inline", sub('password_env = "MAILROUTER_SALES_PASSWORD"', 'password = "hunter2"'), None),
 ("59-password-command-empty", sub('password_env = "MAILROUTER_SALES_PASSWORD"', 'password_command = []'), None),
 ("60-auth-typo", sub('password_env = "MAILROUTER_SALES_PASSWORD"', 'auth = "oauth2"\npassword_env = "MAILROUTER_SALES_PASSWORD"'), None),
 ("61-oauth-http-url", sub('password_env = "MAILROUTER_SALES_PASSWORD"', 'auth = "xoauth2"\noauth2_token_url = "http://login.example.com/token"\noauth2_client_id = "c"\noauth2_refresh_token_env = "MAILROUTER_SALES_PASSWORD"'), None),
 ("62-credentials-dir-unset", sub('password_env = "MAILROUTER_SALES_PASSWORD"', 'password_file = "$CREDENTIALS_DIRECTORY/sales-password"'), None),
 ("63-webhook-url-file-relative", chain(write("hook.url", "https://hooks.example.com/x?key=SECRETKEY123\n"), sub('[sla]\nenabled = true', '[sla]\nenabled = true\n[[sla.webhook]]\nname = "g"\nformat = "wecom"\nurl_file = "hook.url"\n[sla.x]\n', 1)), None),
 ("64-webhook-https-no-host", sub('[sla]\nenabled = true', '[[sla.webhook]]\nname = "g"\nformat = "wecom"\nurl_env = "HOOK"\n[sla]\nenabled = true'), "hook-nohost"),
 ("65-idle-renew-small", sub('idle_renew = 540', 'idle_renew = 5'), None),
 ("66-extra-dates-string", sub('extra_holidays = []', 'extra_holidays = "2026-12-31"'), None),
 ("67-rule-keyword-empty", rule("kwempty", 'keywords = [""]\nrep = "li"'), None),
 ("68-product-no-keywords", append('[products.EMPTY]\nkeywords = []', "rules/60-audit.toml"), None),
 ("69-region-bad-code", append('[regions]\nbad = ["de", "Germany"]', "rules/60-audit.toml"), None),
 ("70-rule-not-table", append('rule = ["x"]', "rules/60-audit.toml"), None),
 ("71-rules-toml-unknown-top", append('[rules]\nx = 1', "rules/60-audit.toml"), None),
 ("72-config-is-directory", lambda d: None, "dir"),
 ("73-mailbox-item-int", write("config.toml", 'mailbox = [1]\n[smtp]\nhost="127.0.0.1"\ntls="none"\n[reps.a]\nemail="a@x.com"\n'), None),
 ("74-reps-not-table-item", sub('[reps.li]\nname = "Li Na"\nemail = "li@example.com"\nlanguage = "en"', '[reps]\nli = "Li Na"'), None),
 ("75-sla-ladder-unknown-key", sub('max_reassignments = 2 ', 'max_reasignments = 2 '), None),
 ("76-rule-sender-glob", rule("glob", 'sender = ["*@acme.de"]\nrep = "li"'), None),
 ("77-rule-recipient-bare", rule("rcpt", 'recipient = ["america"]\nrep = "li"'), None),
 ("78-score-countries-bad", sub('# DE = 5', 'Atlantis = 5\nDE = "five"'), None),
 ("79-two-mailboxes-same-address", sub('address = "info@example.com"', 'address = "sales@example.com"'), None),
 ("80-subdivision-bad", sub('country = "CN"                                 #', 'country = "CN"\nsubdivision = "XX" #'), None),
]


MIN_BASE = """[daemon]
rules_dir = "rules"

[[mailbox]]
name = "sales"
address = "sales@example.com"
host = "127.0.0.1"
tls = "none"
user = "sales"
password_env = "PW"

[smtp]
host = "127.0.0.1"
tls = "none"

[reps.li]
email = "li@example.com"
"""

MIN_RULES = {"rule-keywords-int": '[[rule]]\nname = "k"\nkeywords = 5\nrep = "li"\n',
             "rule-name-int": '[[rule]]\nname = 5\nrep = "li"\n',
             "rule-free_mail-string": '[[rule]]\nname = "f"\nfree_mail = "yes"\nrep = "li"\n',
             "rule-score_min-string": '[[rule]]\nname = "s"\nscore_min = "80"\nrep = "li"\n'}

MIN_CASES = {
 "top-form_sender-list-of-strings": ('form_sender = ["website"]\n', "top"),
 "top-reply_source-list-of-strings": ('reply_source = ["li"]\n', "top"),
 "top-reply_source-list-of-ints": ('reply_source = [1]\n', "top"),
 "sla-webhook-list-of-strings": ('[sla]\nwebhook = ["https://x"]\n', "end"),
 "sla-webhook-name-int": ('[[sla.webhook]]\nname = 5\nformat = 7\nurl_env = "PW"\n', "end"),
 "sla-ladders-string": ('[sla]\nladders = "fast"\n', "end"),
 "sla-ladder-steps-strings": ('[sla.ladders.x]\nsteps = ["5m"]\n', "end"),
 "sla-ladder-step-after-int": ('[sla.ladders.x]\nsteps = [{kind = "remind", after = 5}]\n', "end"),
 "teams-string": ('teams = "europe"\n', "top"),
 "team-hours-int": ('[teams.t]\nmembers = ["li"]\nhours = 5\n', "end"),
 "team-hours-hours-int": ('[teams.t]\nmembers = ["li"]\n[teams.t.hours]\nhours = 9\nweekdays = 1\n', "end"),
 "reps-string": (None, 'reps = "li"'),
 "folders-string": ('folders = "x"\n', "top"),
 "score-countries-string": ('[registry.score]\ncountries = "DE"\n', "end"),
 "digest-int": ('[digest]\ndaily = 830\n', "end"),
 "classify-threshold-string": ('[classify]\nlanguage_threshold = "high"\n', "end"),
 "daemon-string": (None, 'daemon = "x"'),
 "extra-holidays-int": ('[teams.t]\nmembers = ["li"]\n[teams.t.hours]\nextra_holidays = 20261231\n', "end"),
 "mailbox-idle-string": (None, 'idle = "yes"'),
 "command-timeout-huge": (None, 'command_timeout = 1e400'),
 "sweep-negative": ('[sla]\nsweep_interval = -5\n', "end"),
 "max-open-bool": (None, "max_open = true"),
 "rule-keywords-int": (None, None),
 "rule-name-int": (None, None),
 "rule-free_mail-string": (None, None),
 "rule-score_min-string": (None, None),
}


def min_config(name: str) -> str:
    """The minimal config for one MIN_CASES entry, built as mincases.py builds it."""
    text, where = MIN_CASES[name]
    cfg = MIN_BASE
    if text is not None and where == "top":
        return text + cfg
    if text is not None:
        return cfg + text
    if name == "reps-string":
        return 'reps = "li"\n' + cfg.replace('[reps.li]\nemail = "li@example.com"\n', "")
    if name == "daemon-string":
        return 'daemon = "x"\n' + cfg.replace('[daemon]\nrules_dir = "rules"\n', "")
    if name == "mailbox-idle-string":
        return cfg.replace('password_env = "PW"', 'password_env = "PW"\nidle = "yes"')
    if name == "command-timeout-huge":
        return cfg.replace('password_env = "PW"', 'password_command = "echo x"\ncommand_timeout = inf')
    if name == "max-open-bool":
        return cfg + "max_open = true\n"
    return cfg
