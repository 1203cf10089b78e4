"""SIGHUP: every component is rebuilt from the new config, and a bad config changes nothing.

Before: Daemon._apply set `.config` on four components, so the reply recorder kept the rep
addresses it had cached and the collision check kept the old Config (house.md §2c); and a
rules file that was not UTF-8 raised out of reload, killing the daemon (issue 13).
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mailrouter.runtime.daemon import Daemon
from mailrouter.config.load import load_config
from tests.factories import EXAMPLE_ENV, copy_example

NEW_REP = '[reps.zhao]\nname = "Zhao Lei"\nemail = "zhao@example.com"\nlanguage = "zh"\n\n[reps.wang]'


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def running(tmp_path, monkeypatch):
    """A daemon built (not started) from a private copy of the example config."""
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    path = copy_example(tmp_path)
    edit(path, "parse_workers = 1", "parse_workers = 0")  # no parser process for a unit test
    daemon = Daemon(load_config(path))
    yield daemon, path
    daemon.parser.close()


def test_reload_rebuilds_every_component_from_the_new_config(running):
    daemon, path = running
    old = daemon.parts
    edit(path, "[reps.wang]", NEW_REP)
    assert daemon.reload(path)
    new = daemon.parts
    assert new.config is not old.config and "zhao" in new.config.reps
    # derived state comes from the new config, not from patching the old objects
    assert new.recorder.rep_by_address["zhao@example.com"] == "zhao"
    assert new.recorder.on_collision.config is new.config
    for component in (new.router, new.outbox, new.followup, new.recorder):
        assert component.config is new.config
    assert new.router._lock is old.router._lock  # admission stays one at a time across mailboxes
    # the running threads' objects take the new set (workers between rounds)
    assert all(w.recorder is new.recorder for w in daemon.reply_watchers)
    for worker in daemon.workers:
        assert worker.router is old.router
        assert worker._adopt()
        assert (worker.config, worker.router, worker.outbox, worker.followup) == (
            new.config, new.router, new.outbox, new.followup)
        assert "张伟" in " ".join(worker.assign_folders()) and "Assign/zhao" in worker.assign_folders()


@pytest.mark.parametrize("breakage", ["gbk-rules", "latin1-config", "form-sender-strings"])
def test_a_bad_reload_keeps_everything_running_and_logs_file_and_key(running, breakage, caplog):
    daemon, path = running
    before = daemon.parts
    rules = path.parent / "rules" / "50-routing.toml"
    if breakage == "gbk-rules":
        rules.write_bytes(rules.read_text(encoding="utf-8").replace("# Conditions", "# 条件 Conditions")
                          .encode("gbk"))
        where = f"{rules}: line "
    elif breakage == "latin1-config":
        edit(path, 'name = "Li Na"', 'name = "Lü Na"')
        path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1", errors="replace"))
        where = f"{path}: line "
    else:
        text = path.read_text(encoding="utf-8").split("[[form_sender]]")[0]
        path.write_text('form_sender = ["website"]\n' + text, encoding="utf-8")
        where = f"{path}: form_sender[0]: must be a table"
    with caplog.at_level(logging.ERROR, logger="mailrouter.daemon"):
        assert daemon.reload(path) is False
    assert daemon.parts is before
    assert all(w.router is before.router and not w._adopt() for w in daemon.workers)
    assert any(where in r.getMessage() and "old config kept" in r.getMessage() for r in caplog.records), \
        [r.getMessage() for r in caplog.records]


def test_a_reload_says_which_changes_wait_for_a_restart(running, caplog):
    daemon, path = running
    edit(path, "parse_workers = 0", "parse_workers = 2")
    edit(path, 'enabled = false\nhost = "127.0.0.1"', 'enabled = true\nhost = "127.0.0.1"')
    with caplog.at_level(logging.WARNING, logger="mailrouter.daemon"):
        assert daemon.reload(path)
    assert "daemon.parse_workers, [metrics] change only with a restart" in caplog.text
