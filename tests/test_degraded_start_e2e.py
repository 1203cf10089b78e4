"""Issue 17: one dead or refusing IMAP server at start-up delays no other mailbox. The daemon
starts with the mailboxes it can reach, retries the others, and says which and why (log,
`mailrouter status`); it still refuses to start when a shared need fails or no mailbox works."""
from __future__ import annotations

import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from mailrouter.commands.demo import rep_reply_sources, write_testbed_config
from mailrouter.config.load import load_config
from mailrouter.store import FILED, MessageRow
from mailrouter.testing.samples import demo_samples
from tests.mailcheck import ROOT, FaultyServer, count_rows, parsed, start_daemon_process, wait_for
from tests.test_wedge_e2e import NotifyListener

pytestmark = pytest.mark.integration


def _config(bed, tmp_path: Path, changes: dict[str, dict], extra: dict | None = None, smtp: dict | None = None) -> Path:
    """sales, info and a third mailbox `late` on the bed; `changes` overrides keys per mailbox."""
    path = write_testbed_config(ROOT / "config.toml", bed, tmp_path)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    base = {k: v for k, v in data["mailbox"][0].items() if k not in ("name", "address", "user", "display_name")}
    data["mailbox"].append({**base, "name": "late", "address": "late@example.com", "user": "late@example.com",
                            "display_name": "Late"})
    for mailbox in data["mailbox"]:
        mailbox.update(changes.get(mailbox["name"], {}))
    data["smtp"].update(smtp or {})
    for key, value in (extra or {}).items():
        data.setdefault(key, {}).update(value)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def _status(path: Path, language: str = "en") -> str:
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "-c", str(path), "status", "--language", language],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(60)


def _routed(count: int) -> list:
    """Inquiries routed to one named rep, whose mailbox the forward is read from."""
    return [s for s in demo_samples() if s.target in ("zhang", "chen", "wang")][:count]


def _forward_reached(bed, config, sample) -> bool:
    """The rep's own mail client shows a forward of `sample` (read back over IMAP)."""
    rep = config.reps[sample.target]
    subject = parsed(sample.raw)["Subject"]
    return any(subject in str(parsed(raw)["Subject"]) for raw in bed.fetch_all(rep.email))


def test_one_dead_server_at_start_delays_no_other_mailbox_and_is_served_once_it_comes_up(make_bed, tmp_path,
                                                                                         monkeypatch):
    bed = make_bed(extra_addresses=("late@example.com",))
    late = FaultyServer(bed.imap_port, listening=False)  # a dead server until come_up()
    systemd = NotifyListener()
    try:
        path = _config(bed, tmp_path, {"late": {"port": late.port}})
        config = load_config(path)
        log = tmp_path / "daemon.log"
        monkeypatch.setenv("NOTIFY_SOCKET", str(systemd.path))
        process = start_daemon_process(path, log)
        try:
            first, second = _routed(2)
            bed.deliver("sales@example.com", first.raw, mail_from=first.envelope_from)
            bed.deliver("late@example.com", second.raw, mail_from=second.envelope_from)
            wait_for(lambda: count_rows(config, MessageRow.mailbox == "sales", MessageRow.state == FILED) >= 1
                     or process.poll() is not None, "sales routed while late's server is dead", 120)
            assert process.poll() is None, log.read_text()
            wait_for(lambda: _forward_reached(bed, config, first), "the forward in the rep's mailbox", 60)
            errors = [line for line in log.read_text().splitlines() if "mailbox late: not connected at start" in line]
            assert len(errors) == 1 and "ERROR" in errors[0] and "the others run" in errors[0], log.read_text()
            text = _status(path)
            assert "not connected" in text.split("mailbox late:")[1].split("mailbox ")[0], text
            assert "未连接" in _status(path, "zh")
            late.come_up()
            wait_for(lambda: count_rows(config, MessageRow.mailbox == "late", MessageRow.state == FILED) >= 1,
                     "late's mail routed once its server is up", 400)  # the backoff reaches 5 min at most
            wait_for(lambda: _forward_reached(bed, config, second), "late's forward in the rep's mailbox", 60)
            assert "not connected" not in _status(path)
            assert sum("mailbox late: connected" in line for line in log.read_text().splitlines()) == 1
            statuses = [text for _, text in list(systemd.received) if "STATUS=" in text]
            # `systemctl status`: READY names the dead mailbox; the last word says all are in again
            ready = next(text for text in statuses if text.startswith("READY=1"))
            assert "not connected: mailbox late (since" in ready, statuses
            wait_for(lambda: "not connected" not in [t for _, t in list(systemd.received) if "STATUS=" in t][-1],
                     "a STATUS without the outage", 30)
        finally:
            assert _stop(process) == 0
    finally:
        late.close()
        systemd.close()
    assert "Traceback" not in log.read_text()
    # one ERROR at start, not one per retry
    assert sum(" ERROR " in line and "late" in line for line in log.read_text().splitlines()) == 1, log.read_text()


def test_a_silent_server_at_start_holds_the_others_back_for_seconds_not_its_timeout(make_bed, tmp_path):
    bed = make_bed(extra_addresses=("late@example.com",))
    silent = FaultyServer(bed.imap_port)
    silent.hang()  # accepts and never says a word: a hung server, or a firewall dropping all but the handshake
    try:
        # 300 s: before, the start-up check waited that long for it before anything was routed
        path = _config(bed, tmp_path, {"late": {"port": silent.port, "timeout": 300}})
        config = load_config(path)
        log = tmp_path / "daemon.log"
        process = start_daemon_process(path, log)
        try:
            (sample,) = _routed(1)
            bed.deliver("sales@example.com", sample.raw, mail_from=sample.envelope_from)
            wait_for(lambda: count_rows(config, MessageRow.state == FILED) >= 1 or process.poll() is not None,
                     "sales routed while late's server stays silent", 150)
            assert process.poll() is None, log.read_text()
            assert silent.hung, "the silent server was never asked"
            wait_for(lambda: _forward_reached(bed, config, sample), "the forward in the rep's mailbox", 60)
            late_part = _status(path).split("mailbox late:")[1]
            assert "not connected" in late_part and "no answer within" in late_part, late_part
        finally:
            assert _stop(process) == 0
    finally:
        silent.close()
    assert any(" ERROR " in line and "mailbox late: not connected at start (no answer within" in line
               for line in log.read_text().splitlines()), log.read_text()


def test_a_refused_login_stops_no_other_mailbox_and_shows_in_status(make_bed, tmp_path):
    bed = make_bed(extra_addresses=("late@example.com",))
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password")
    wrong.chmod(0o600)
    path = _config(bed, tmp_path, {"late": {"password_file": str(wrong)}})
    config = load_config(path)
    log = tmp_path / "daemon.log"
    process = start_daemon_process(path, log)
    try:
        (sample,) = _routed(1)
        bed.deliver("info@example.com", sample.raw, mail_from=sample.envelope_from)
        wait_for(lambda: count_rows(config, MessageRow.state == FILED) >= 1 or process.poll() is not None,
                 "info routed beside a refused login", 120)
        assert process.poll() is None, log.read_text()
        wait_for(lambda: _forward_reached(bed, config, sample), "the forward in the rep's mailbox", 60)
        text = _status(path)
        late_part = text.split("mailbox late:")[1]
        assert "login refused" in late_part, text
        assert "登录被拒绝" in _status(path, "zh")
    finally:
        assert _stop(process) == 0
    lines = log.read_text().splitlines()
    assert any(" ERROR " in line and "mailbox late: not connected at start" in line and "login refused" in line
               for line in lines), log.read_text()
    assert "not-the-password" not in log.read_text()


def test_a_reload_after_fixing_a_refused_password_connects_at_once(make_bed, tmp_path):
    """A refused login is retried only every 1 to 10 min; the person who fixed the password
    and ran `systemctl reload` should not wait that long."""
    bed = make_bed(extra_addresses=("late@example.com",))
    secret = tmp_path / "late-password"
    secret.write_text("not-the-password")
    secret.chmod(0o600)
    path = _config(bed, tmp_path, {"late": {"password_file": str(secret)}})
    config = load_config(path)
    log = tmp_path / "daemon.log"
    process = start_daemon_process(path, log)
    try:
        wait_for(lambda: "mailrouter started" in log.read_text() or process.poll() is not None, "the start", 120)
        assert process.poll() is None, log.read_text()
        secret.write_text(bed.password)
        process.send_signal(signal.SIGHUP)
        # the first retry after a refusal is 60 s away: connecting well before it means the reload woke it
        wait_for(lambda: "mailbox late: connected" in log.read_text(), "late connected after the reload", 40)
        (sample,) = _routed(1)
        bed.deliver("late@example.com", sample.raw, mail_from=sample.envelope_from)
        wait_for(lambda: count_rows(config, MessageRow.mailbox == "late", MessageRow.state == FILED) >= 1,
                 "late's mail routed", 120)
        assert "not connected" not in _status(path)
    finally:
        assert _stop(process) == 0


def test_a_reply_source_refused_at_start_stops_nothing_and_a_reload_with_its_password_fixed_connects(
        make_bed, tmp_path):
    bed = make_bed(extra_addresses=("late@example.com",))
    secret = tmp_path / "reply-password"
    secret.write_text("not-the-password")
    secret.chmod(0o600)
    path = write_testbed_config(ROOT / "config.toml", bed, tmp_path)
    sources = rep_reply_sources(ROOT / "config.toml", bed, tmp_path / "password")[:2]
    sources[1]["password_file"] = str(secret)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data["reply_source"] = sources
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    config = load_config(path)
    label = f"reply source rep_mailbox:{sources[1]['rep']}"
    log = tmp_path / "daemon.log"
    process = start_daemon_process(path, log)
    try:
        (sample,) = _routed(1)
        bed.deliver("sales@example.com", sample.raw, mail_from=sample.envelope_from)
        wait_for(lambda: count_rows(config, MessageRow.state == FILED) >= 1 or process.poll() is not None,
                 "sales routed beside a refused reply source", 120)
        assert process.poll() is None, log.read_text()
        text = _status(path)
        assert f"{label}:\n  connection" in text and "login refused" in text, text
        secret.write_text(bed.password)
        process.send_signal(signal.SIGHUP)  # the watcher takes the reloaded password
        wait_for(lambda: f"{label}: connected" in log.read_text(), "the reply source connected after the reload", 60)
        assert "not connected" not in _status(path)
    finally:
        assert _stop(process) == 0
    assert any(" ERROR " in line and f"{label}: not connected at start" in line
               for line in log.read_text().splitlines()), log.read_text()


def test_every_mailbox_dead_refuses_the_start(make_bed, tmp_path):
    bed = make_bed(extra_addresses=("late@example.com",))
    dead = FaultyServer(bed.imap_port, listening=False)  # never comes up
    try:
        path = _config(bed, tmp_path, {name: {"port": dead.port} for name in ("sales", "info", "late")})
        log = tmp_path / "daemon.log"
        process = start_daemon_process(path, log)
        assert process.wait(120) == 1, log.read_text()
    finally:
        dead.close()
    refused = [line for line in log.read_text().splitlines() if "not starting" in line]
    assert len(refused) == 1 and "no mailbox could connect" in refused[0], log.read_text()


def test_a_shared_failure_still_refuses_the_start(make_bed, tmp_path):
    bed = make_bed(extra_addresses=("late@example.com",))
    dead = FaultyServer(bed.smtp_port, listening=False)
    try:
        path = _config(bed, tmp_path, {}, smtp={"port": dead.port})
        log = tmp_path / "daemon.log"
        process = start_daemon_process(path, log)
        assert process.wait(120) == 1, log.read_text()
    finally:
        dead.close()
    assert any("start-up check failed: SMTP" in line for line in log.read_text().splitlines()), log.read_text()
