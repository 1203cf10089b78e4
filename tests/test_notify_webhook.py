"""WebhookSender against a real HTTP server on loopback: delivery, retry, give-up, redaction."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mailrouter.sla.notify import Notice, NoticeKind
from mailrouter.sla.webhook import WebhookSender, WebhookTarget, redact_url, webhook_from_config

TOKEN = "s3cr3t-token-693a"


@dataclass
class Receiver:
    """Answers with the queued statuses in turn (200 when none is left), records every body."""

    url: str
    statuses: list[int] = field(default_factory=list)
    bodies: list[dict] = field(default_factory=list)
    reply: bytes = b'{"errcode":0,"errmsg":"ok"}'


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            state.bodies.append(json.loads(self.rfile.read(length)))
            status = state.statuses.pop(0) if state.statuses else 200
            body = state.reply if status == 200 else b"oops"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest output for failures

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/webhook/send?key={TOKEN}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    s = WebhookSender(timeout=5, attempts=3, backoff_initial=0.05, backoff_max=0.2)
    yield s
    s.close(timeout=5)


def escalation() -> Notice:
    return Notice(kind=NoticeKind.ESCALATE, rep="Li Na", customer="buyer@acme.de",
                  subject="RFQ PCB", message_id="<abc@acme.de>", age=timedelta(minutes=16),
                  language="zh", supervisor="Wang Wei", step="escalate@15m")


def test_wecom_escalation_arrives(receiver: Receiver, sender: WebhookSender) -> None:
    assert sender.notify(WebhookTarget("wecom-sales", receiver.url, "wecom"), escalation())
    assert sender.flush(timeout=5)
    (body,) = receiver.bodies
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["content"].startswith("**升级：Li Na16分钟未回复**")


def test_a_500_is_retried_then_delivered(receiver: Receiver, sender: WebhookSender,
                                         caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses = [500]
    caplog.set_level(logging.INFO, logger="mailrouter.webhook")
    sender.notify(WebhookTarget("wecom-sales", receiver.url, "wecom"), escalation())
    assert sender.flush(timeout=5)
    assert len(receiver.bodies) == 2 and receiver.bodies[0] == receiver.bodies[1]
    assert "HTTP 500; retry 2/3" in caplog.text
    assert "delivered (attempt 2)" in caplog.text
    assert TOKEN not in caplog.text and "key=" not in caplog.text


def test_a_platform_error_in_a_200_is_retried(receiver: Receiver, sender: WebhookSender,
                                              caplog: pytest.LogCaptureFixture) -> None:
    receiver.reply = b'{"errcode":45009,"errmsg":"api freq out of limit"}'
    sender.send(WebhookTarget("wecom-sales", receiver.url, "wecom"), {"msgtype": "text"})
    assert sender.flush(timeout=5)
    assert len(receiver.bodies) == 3  # every attempt used
    assert "platform error 45009: api freq out of limit; giving up after 3 attempt(s)" in caplog.text


def test_a_400_is_not_retried(receiver: Receiver, sender: WebhookSender, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses = [400]
    sender.send(WebhookTarget("slack", receiver.url, "slack"), {"text": "x"})
    assert sender.flush(timeout=5)
    assert len(receiver.bodies) == 1
    assert "HTTP 400; giving up after 1 attempt(s)" in caplog.text


def closed_port() -> int:
    """A loopback port nobody listens on: bound for a moment, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_endpoint_never_blocks_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    sender = WebhookSender(timeout=1, attempts=2, backoff_initial=0.05)
    try:
        began = time.monotonic()
        url = f"http://127.0.0.1:{closed_port()}/hook?access_token={TOKEN}"
        assert sender.send(WebhookTarget("dead", url), {"a": 1})
        assert time.monotonic() - began < 0.1
        assert sender.flush(timeout=5)
    finally:
        sender.close()
    assert "webhook dead (127.0.0.1): cannot connect" in caplog.text
    assert TOKEN not in caplog.text


def test_flush_times_out_while_backing_off(receiver: Receiver) -> None:
    receiver.statuses = [503]
    sender = WebhookSender(attempts=2, backoff_initial=0.5)
    try:
        sender.send(WebhookTarget("slow", receiver.url), {"a": 1})
        assert not sender.flush(timeout=0.1)
        assert sender.flush(timeout=5)
    finally:
        sender.close()
    assert len(receiver.bodies) == 2


def test_closed_sender_refuses(caplog: pytest.LogCaptureFixture) -> None:
    sender = WebhookSender()
    sender.close()
    assert not sender.send(WebhookTarget("x", "https://example.com/hook"), {})
    assert "sender closed" in caplog.text


def test_target_repr_and_redaction_hide_the_token() -> None:
    target = WebhookTarget("slack", f"https://hooks.slack.com/services/T0/B0/{TOKEN}", "slack")
    assert TOKEN not in repr(target) and TOKEN not in target.where
    assert redact_url(target.url) == "https://hooks.slack.com/…"


# --- config ---------------------------------------------------------------------------------

def test_webhook_from_config_reads_url_from_the_environment() -> None:
    raw = {"name": "wecom-sales", "format": "wecom", "url_env": "WECOM_URL"}
    url = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={TOKEN}"
    target, problems = webhook_from_config(raw, "config.toml", "sla.webhook[0].", {"WECOM_URL": url})
    assert problems == [] and target == WebhookTarget("wecom-sales", url, "wecom", batch=60.0)  # a minute by default


def test_webhook_from_config_reads_url_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "hook.url"
    path.write_text("https://oapi.dingtalk.com/robot/send?access_token=x\n")
    target, problems = webhook_from_config({"name": "ding", "format": "dingtalk", "url_file": str(path)},
                                           "config.toml", "sla.webhook[0].", {})
    assert problems == [] and target is not None and target.url.endswith("access_token=x")


def test_webhook_config_problems() -> None:
    raw = {"format": "teams", "url": f"https://x/?key={TOKEN}", "url_env": "NOPE"}
    target, problems = webhook_from_config(raw, "config.toml", "sla.webhook[0].", {})
    messages = {p.key: p.message for p in problems}
    assert target is None
    assert set(messages) == {"sla.webhook[0].url", "sla.webhook[0].name", "sla.webhook[0].format",
                             "sla.webhook[0].url_env"}
    assert "use url_env or url_file" in messages["sla.webhook[0].url"]
    assert TOKEN not in str(problems)


def test_plain_http_only_to_loopback() -> None:
    _, problems = webhook_from_config({"name": "x", "url_env": "U"}, "config.toml", "sla.webhook[0].",
                                      {"U": f"http://hooks.example.com/x?key={TOKEN}"})
    (problem,) = problems
    assert "must be https" in problem.message and TOKEN not in problem.message
