"""Config validation: every mistake reported with file, key and what is wrong, all at once."""
from pathlib import Path

import pytest

from mailrouter.config.load import ConfigError, load_config
from tests.factories import EXAMPLE_ENV, copy_example, example_config


def problems_of(path: Path, env=EXAMPLE_ENV) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env)
    return [str(p) for p in info.value.problems]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_example_config_loads_with_every_section():
    config = example_config()
    assert [m.name for m in config.mailboxes] == ["sales", "info"]
    assert config.reps["zhang"].folder == "张伟"
    assert config.teams["americas"].strategy == "least_loaded"
    assert config.rules.rules[0].name == "america-alias"
    assert {p.id for p in config.parse.products} == {"PCB", "LED", "VALVE"}
    assert "zhang@example.com" in config.own_addresses and "sales@example.com" in config.own_addresses


def test_secret_never_shows_in_repr():
    config = example_config()
    assert "s" == config.mailboxes[0].server.credentials.get()
    assert "'s'" not in repr(config.mailboxes[0])


def test_missing_password_variable_names_file_and_key(tmp_path):
    path = copy_example(tmp_path)
    found = problems_of(path, env={})
    assert f"{path}: mailbox[0].password_env: environment variable MAILROUTER_SALES_PASSWORD is not set" in found
    assert any("smtp.password_env" in p for p in found)


def test_all_problems_reported_together(tmp_path):
    path = copy_example(tmp_path)
    edit(path, 'tls = "implicit"', 'tls = "maybe"')
    edit(path, 'strategy = "round_robin"', 'strategy = "random"')
    edit(path, 'members = ["chen", "li"]', 'members = ["chen", "nobody"]')
    edit(path, "timeout = 60", 'timeout = "sixty"')
    edit(path, "[folders]", "[folders]\ncolour = \"red\"")
    found = problems_of(path)
    assert any("mailbox[0].tls: must be one of implicit, starttls, none, not 'maybe'" in p for p in found)
    assert any("teams.europe.strategy" in p and "'random'" in p for p in found)
    assert any("teams.americas.members: unknown rep 'nobody'" in p for p in found)
    assert any("mailbox[0].timeout: must be a number" in p for p in found)
    assert any("folders.colour: unknown key" in p for p in found)
    assert all(p.startswith(str(path)) for p in found)


def test_inline_password_is_refused(tmp_path):
    path = copy_example(tmp_path)
    edit(path, 'password_env = "MAILROUTER_SMTP_PASSWORD"', 'password = "hunter2"')
    found = problems_of(path)
    assert any("smtp.password: passwords are never written in the config file" in p for p in found)
    assert not any("hunter2" in p for p in found)


def test_plaintext_to_a_remote_server_is_refused(tmp_path):
    path = copy_example(tmp_path)
    edit(path, 'tls = "starttls"', 'tls = "none"')
    assert any("smtp.tls: plaintext to smtp.example.com" in p for p in problems_of(path))


def test_bad_toml_names_the_file(tmp_path):
    path = copy_example(tmp_path)
    path.write_text("[daemon\n", encoding="utf-8")
    found = problems_of(path)
    assert len(found) == 1 and found[0].startswith(f"{path}: -: not valid TOML")


def test_rule_mistakes_name_the_rule_file(tmp_path):
    path = copy_example(tmp_path)
    rules = tmp_path / "rules" / "50-routing.toml"
    edit(rules, 'region = ["dach"]', 'region = ["atlantis"]')
    edit(rules, 'rep = "chen"', 'rep = "ghost"')
    edit(rules, 'product = ["PCB"]\nrep', 'colour = "blue"\nproduct = ["PCB"]\nrep')
    (tmp_path / "rules" / "60-more.toml").write_text(
        '[[rule]]\nname = "both"\nrep = "li"\nteam = "europe"\n', encoding="utf-8")
    found = problems_of(path)
    assert f"{rules}: rule 'german-pcb': region: unknown region 'atlantis' (define it under [regions])" in found
    assert any(p.startswith(f"{rules}: rule 'russian-speaking': rep: unknown rep 'ghost'") for p in found)
    assert any(p.startswith(f"{rules}: rule 'german-pcb': colour: unknown key") for p in found)
    assert any("60-more.toml: rule 'both': rep: a rule targets exactly one of" in p for p in found)


def test_bad_country_code_in_region(tmp_path):
    path = copy_example(tmp_path)
    edit(tmp_path / "rules" / "00-regions.toml", '"DE", "AT", "CH"]', '"DE", "Austria"]')
    assert any("regions.dach: country codes are ISO 3166" in p for p in problems_of(path))


def test_rule_naming_an_unknown_ladder_is_refused(tmp_path):
    path = copy_example(tmp_path)
    rules = tmp_path / "rules" / "50-routing.toml"
    edit(rules, 'rep = "chen"', 'rep = "chen"\nladder = "glacial"')
    assert any("rule 'russian-speaking': ladder: unknown ladder 'glacial'" in p for p in problems_of(path))
    edit(rules, 'ladder = "glacial"', 'ladder = "cold"')
    assert load_config(path, environ=EXAMPLE_ENV).rules.rules[2].ladder == "cold"


def test_large_message_threshold_and_spool_folder(tmp_path):
    path = copy_example(tmp_path)
    config = load_config(path, environ=EXAMPLE_ENV)
    assert config.large_message_bytes == 2 * 2**20
    assert config.spool_dir == tmp_path / "spool"  # next to the SQLite database
    edit(path, "large_message_bytes = 2097152", "large_message_bytes = 65536")
    edit(path, '# spool_dir = "/var/lib/mailrouter/spool"', 'spool_dir = "var/spool"')
    config = load_config(path, environ=EXAMPLE_ENV)
    assert (config.large_message_bytes, config.spool_dir) == (65536, tmp_path / "var" / "spool")


def test_bad_large_message_settings_name_file_and_key(tmp_path):
    path = copy_example(tmp_path)
    (tmp_path / "afile").write_text("")
    edit(path, "large_message_bytes = 2097152", 'large_message_bytes = "2 MB"')
    edit(path, '# spool_dir = "/var/lib/mailrouter/spool"', 'spool_dir = "afile"')
    found = problems_of(path)
    assert f"{path}: daemon.large_message_bytes: must be an integer, not '2 MB'" in found
    assert any(p.startswith(f"{path}: daemon.spool_dir: ") and "not a folder" in p for p in found)
    edit(path, 'large_message_bytes = "2 MB"', "large_message_bytes = 0")
    assert any("daemon.large_message_bytes: must be at least 1" in p for p in problems_of(path))


def test_backlog_keys_are_read_and_checked(tmp_path):
    config = example_config()
    assert (config.parse_workers, config.smtp.connections) == (1, 3)  # the annotated defaults
    path = copy_example(tmp_path)
    edit(path, "parse_workers = 1", "parse_workers = 0")
    edit(path, "connections = 3", "connections = 1")
    loaded = load_config(path, environ=EXAMPLE_ENV)
    assert (loaded.parse_workers, loaded.smtp.connections) == (0, 1)
    edit(path, "parse_workers = 0", "parse_workers = 99")
    edit(path, "connections = 1", "connections = 0")
    found = problems_of(path)
    assert f"{path}: daemon.parse_workers: must be between 0 and 8, not 99" in found
    assert f"{path}: smtp.connections: must be between 1 and 20, not 0" in found


@pytest.mark.parametrize("value, problem", [
    ("0", "must be between 1 and 3600, not 0.0"),
    ("-5", "must be between 1 and 3600, not -5.0"),
    ('"30s"', "must be a number, not '30s'"),
])
def test_parse_timeout_is_read_and_checked(tmp_path, value, problem):
    assert example_config().parse_timeout == 30.0  # the annotated default
    path = copy_example(tmp_path)
    edit(path, "parse_timeout = 30", "parse_timeout = 2.5")
    assert load_config(path, environ=EXAMPLE_ENV).parse_timeout == 2.5
    edit(path, "parse_timeout = 2.5", f"parse_timeout = {value}")
    assert f"{path}: daemon.parse_timeout: {problem}" in problems_of(path)


@pytest.mark.parametrize("value, problem", [
    ("64", "must be between 128 and 65536, not 64"),
    ('"1G"', "must be an integer, not '1G'"),
])
def test_parse_memory_mb_is_read_and_checked(tmp_path, value, problem):
    assert example_config().parse_memory_mb == 512  # the annotated default
    path = copy_example(tmp_path)
    edit(path, "parse_memory_mb = 512", "parse_memory_mb = 300")
    assert load_config(path, environ=EXAMPLE_ENV).parse_memory_mb == 300
    edit(path, "parse_memory_mb = 300", f"parse_memory_mb = {value}")
    assert f"{path}: daemon.parse_memory_mb: {problem}" in problems_of(path)


# --- forward.labels: one grammar validates and renders (review house.md §2b) -------------------

LABELS_LINE = 'labels = "[{reinquiry}][{country}][{products}]"'


@pytest.mark.parametrize("fmt", ["{country:>4}", "{subject!r}"])
def test_labels_the_renderer_cannot_apply_are_refused(tmp_path, fmt):
    # Before: str.format accepted these and the regex renderer left them in the subject as text.
    path = copy_example(tmp_path)
    edit(path, LABELS_LINE, f"labels = '{fmt}'")
    found = problems_of(path)
    assert len(found) == 1 and found[0].startswith(f"{path}: forward.labels: "), found
    assert "no format spec or conversion" in found[0] and "{country}" in found[0]


def test_labels_escaped_braces_render_as_single_braces(tmp_path):
    from mailrouter.act.forward import tag_labels
    from mailrouter.model import Decision, Outcome
    from tests.factories import make_inquiry

    path = copy_example(tmp_path)
    edit(path, LABELS_LINE, "labels = '{{{country}}}'")
    config = load_config(path, environ=EXAMPLE_ENV)
    inquiry = make_inquiry(country="DE", subject="Need PCBs", products=())
    decision = Decision(Outcome.ROUTED, "test", rule="europe", rep="zhang")
    assert tag_labels(config.labels, inquiry, decision) == "{DE}"


# --- the subject a buyer gets back: theirs, plus at most the customer tag (issue 15 item 1) ----

def _subject_of(path, subject="Need PCBs"):
    from mailrouter.act.forward import tag_subject
    from mailrouter.model import Decision, Outcome
    from tests.factories import make_inquiry

    config = load_config(path, environ=EXAMPLE_ENV)
    decision = Decision(Outcome.ROUTED, "test", rule="europe", rep="zhang", how="registry")
    return config, tag_subject(config.subject_format, make_inquiry(country="DE", subject=subject,
                                                                   products=("PCB",)), decision)


@pytest.mark.parametrize("placement, expected", [
    ("left", "[Acme] Need PCBs"), ("right", "Need PCBs [Acme]"), ("none", "Need PCBs")])
def test_customer_tag_is_placed_as_configured(tmp_path, placement, expected):
    path = copy_example(tmp_path)
    edit(path, 'customer_tag = ""', 'customer_tag = "[Acme]"')
    edit(path, 'customer_tag_placement = "left"', f'customer_tag_placement = "{placement}"')
    assert _subject_of(path)[1] == expected


def test_example_config_subject_is_the_buyers_own(tmp_path):
    assert _subject_of(copy_example(tmp_path))[1] == "Need PCBs"


@pytest.mark.parametrize("tag, why", [
    ("[{country}]", "placeholders"), ("Acme\\nBcc: x@y.z", "no control characters"), ("A" * 41, "at most 40")])
def test_customer_tag_that_could_leak_or_break_is_refused(tmp_path, tag, why):
    path = copy_example(tmp_path)
    edit(path, 'customer_tag = ""', f'customer_tag = "{tag}"')
    found = problems_of(path)
    assert len(found) == 1 and found[0].startswith(f"{path}: forward.customer_tag: "), found
    assert why in found[0]


def test_customer_tag_placement_is_validated(tmp_path):
    path = copy_example(tmp_path)
    edit(path, 'customer_tag_placement = "left"', 'customer_tag_placement = "top"')
    found = problems_of(path)
    assert found == [f"{path}: forward.customer_tag_placement: 'top': one of left, right, none"]


def test_old_subject_format_becomes_labels_and_check_says_so(tmp_path):
    from mailrouter.runtime.preflight import config_findings

    path = copy_example(tmp_path)
    edit(path, LABELS_LINE, 'subject_format = "[{reinquiry}][{country}][{products}] {subject}"')
    config, subject = _subject_of(path)
    assert subject == "Need PCBs"  # the labels no longer reach the buyer
    assert config.labels.text == "[{reinquiry}][{country}][{products}]"
    notes = [note for f in config_findings(config) for note in f.notes]
    assert len(notes) == 1 and "forward.subject_format" in notes[0] and str(path) in notes[0]


def test_old_subject_format_beside_labels_is_refused(tmp_path):
    path = copy_example(tmp_path)
    edit(path, LABELS_LINE, LABELS_LINE + '\nsubject_format = "[{country}] {subject}"')
    assert problems_of(path) == [f"{path}: forward.subject_format: replaced by forward.labels, which is set "
                                 "too: remove subject_format"]


@pytest.mark.parametrize("old,new,key", [
    ("poll_interval = 30                             #", "poll_interval = 0 #", "mailbox[0].poll_interval"),
    ("port = 993                                     #", "port = 0 #", "mailbox[0].port"),
    ("port = 587", "port = 70000", "smtp.port"),
    ("timeout = 60                                   #", "timeout = 0 #", "mailbox[0].timeout"),
    ("sweep_interval = 30                            #", "sweep_interval = 0 #", "sla.sweep_interval"),
    ("retry_initial = 30                             #", "retry_initial = 0 #", "smtp.retry_initial"),
])
def test_zero_and_out_of_range_numbers_are_refused_with_the_range(tmp_path, old, new, key):
    # poll_interval = 0 used to be accepted and issue IMAP commands as fast as the server answered
    path = copy_example(tmp_path)
    edit(path, old, new)
    found = problems_of(path)
    assert any(p.startswith(f"{path}: {key}: must be ") for p in found), found


def test_backfill_default_and_forms(tmp_path):
    from datetime import date, timedelta
    config = example_config()
    assert config.mailboxes[0].backfill.window == timedelta(hours=24)  # written in config.toml
    assert config.mailboxes[1].backfill.window == timedelta(hours=24)  # not written: the default
    path = copy_example(tmp_path)
    edit(path, 'backfill = "24h"', "backfill = 2026-12-01")  # an unquoted TOML date
    assert load_config(path, environ=EXAMPLE_ENV).mailboxes[0].backfill.since == date(2026, 12, 1)
    edit(path, "backfill = 2026-12-01", "backfill = 0")
    zero = load_config(path, environ=EXAMPLE_ENV).mailboxes[0].backfill
    assert (zero.window, zero.since) == (None, None)  # route nothing


def test_bad_backfill_names_file_key_and_forms(tmp_path):
    path = copy_example(tmp_path)
    edit(path, 'backfill = "24h"', 'backfill = "yesterday"')
    found = problems_of(path)
    assert any(p.startswith(f"{path}: mailbox[0].backfill: 'yesterday'") and '"3d"' in p
               and "2026-12-01" in p for p in found), found
