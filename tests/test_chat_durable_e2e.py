"""A chat post waiting for its batch window survives a crash (issue 15 item 3).

Posts are batched per channel per minute. The batch was held in memory only, so a daemon killed
inside the window lost it: the supervisor's group never heard of the 撞单. Here the daemon runs
as systemd runs it, a rep's mail to another rep's customer queues a post for a 5-minute window,
the daemon is killed (SIGKILL: no clean stop to flush it), and the restarted daemon posts it.
"""
from __future__ import annotations

import json
import signal
import threading
from datetime import datetime, timezone
from http.server import HTTPServer

import pytest
from sqlalchemy import select

from mailrouter.commands.cli import main
from mailrouter.store import ChatPostRow, CollisionRow, open_database
from mailrouter.config.load import load_config
from mailrouter.commands.demo import write_testbed_config, rep_reply_sources
from tests.factories import ROOT
from tests.mailcheck import start_daemon_process, wait_for
from tests.test_sla_e2e import BUYER, Receiver, buyer_bed, reply_as_client  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


def rows(sessions, query) -> list:
    with sessions() as session:
        return list(session.scalars(query))


@pytest.fixture
def chat_group(monkeypatch):
    """A WeCom-like group webhook on loopback; the daemon process inherits its URL."""
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received = []
    monkeypatch.setenv("WECOM_URL", f"http://127.0.0.1:{server.server_port}/cgi-bin/webhook/send?key=SECRET")
    yield Receiver.received
    server.shutdown()
    server.server_close()


def test_a_batched_chat_post_is_sent_after_a_crash_inside_its_window(buyer_bed, tmp_path, chat_group):
    overrides = {"sla": {"sweep_interval": 0.5, "webhook": [{"name": "sales-group", "format": "wecom",
                                                             "url_env": "WECOM_URL", "batch": "5m"}]},
                 "reply_source": rep_reply_sources(ROOT / "config.toml", buyer_bed, tmp_path / "password")}
    path = write_testbed_config(ROOT / "config.toml", buyer_bed, tmp_path, overrides)
    config = load_config(path)
    sheet = tmp_path / "customers.csv"
    sheet.write_text(f"Name,Email,Company\nMarie Dubois,{BUYER},Lumière Lyon\n", encoding="utf-8")
    assert main(["-c", str(path), "registry", "import", str(sheet), "--source", "CRM", "--owner", "li"]) == 0
    sessions = open_database(config.database)
    log = tmp_path / "daemon.log"

    # zhang writes to li's customer (its copy in zhang's Sent, which the daemon reads from the start)
    reply_as_client(buyer_bed, config.reps["zhang"].email, "<unrelated@example.com>", datetime.now(timezone.utc))
    daemon = start_daemon_process(path, log)
    try:
        wait_for(lambda: rows(sessions, select(CollisionRow)), "the collision", timeout=90)
    finally:
        daemon.send_signal(signal.SIGKILL)  # inside the 5-minute window: nothing posted yet
        daemon.wait(30)
    assert chat_group == [], "posted before its window closed"

    daemon = start_daemon_process(path, log)
    try:
        posts = wait_for(lambda: list(chat_group), "the post after the restart", timeout=90)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text()
    assert len(posts) == 1
    content = json.dumps(posts[0], ensure_ascii=False)
    assert BUYER in content and ("撞单" in content or "ollision" in content)
    assert rows(sessions, select(ChatPostRow)) == []  # posted, so forgotten: no third post
