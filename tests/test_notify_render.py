"""Notices as email (templates, en/zh) and as chat payloads (one shape per platform)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jinja2
import pytest

from mailrouter.sla.notify import (
    FORMATS, Link, Notice, NoticeKind, format_age, render_notice, webhook_payload,
)
from mailrouter.act.templating import make_environment

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    return make_environment(TEMPLATES)


def notice(kind: NoticeKind = NoticeKind.ESCALATE, language: str = "en", **kw: object) -> Notice:
    values: dict = dict(kind=kind, rep="Li Na", customer="Acme GmbH <buyer@acme.de>",
                        subject="RFQ: 5000 pcs PCB", message_id="<abc@acme.de>",
                        age=timedelta(minutes=17), language=language, supervisor="Wang Wei",
                        other_rep="Zhang San", step="escalate@15m",
                        links=(Link("Open in webmail", "https://mail.example.com/x"),))
    values.update(kw)
    return Notice(**values)


# --- email ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(NoticeKind))
@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_notice_renders_in_both_languages(env: jinja2.Environment, kind: NoticeKind, language: str) -> None:
    rendered = render_notice(env, notice(kind, language))
    assert rendered.subject and "\n" not in rendered.subject
    assert "<abc@acme.de>" in rendered.body
    assert not rendered.body.startswith("\n")


def test_english_escalation(env: jinja2.Environment) -> None:
    rendered = render_notice(env, notice())
    assert rendered.subject == "[Escalation] Li Na has not replied in 17 min: RFQ: 5000 pcs PCB"
    assert rendered.body.startswith("Hello Wang Wei,")
    assert "https://mail.example.com/x" in rendered.body


def test_chinese_reminder(env: jinja2.Environment) -> None:
    rendered = render_notice(env, notice(NoticeKind.REMIND, "zh-CN", age=timedelta(hours=1, minutes=5)))
    assert rendered.subject == "【提醒】询盘已等待1小时5分钟：RFQ: 5000 pcs PCB"
    assert rendered.body.startswith("Li Na，您好")


def test_unknown_language_falls_back_to_english(env: jinja2.Environment) -> None:
    assert render_notice(env, notice(NoticeKind.REMIND, "de")).subject.startswith("[Reminder]")


def test_buyer_subject_cannot_add_header_lines(env: jinja2.Environment) -> None:
    rendered = render_notice(env, notice(subject="Hi\r\nBcc: evil@x.com"))
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    assert "Hi Bcc: evil@x.com" in rendered.subject


def test_reassigned_away_without_new_rep(env: jinja2.Environment) -> None:
    rendered = render_notice(env, notice(NoticeKind.REASSIGNED_AWAY, other_rep=None))
    assert "taken back from you" in rendered.body


@pytest.mark.parametrize(("age", "en", "zh"), [
    (timedelta(seconds=30), "0 min", "0分钟"),
    (timedelta(minutes=5), "5 min", "5分钟"),
    (timedelta(hours=2, minutes=3, seconds=59), "2 h 3 min", "2小时3分钟"),
    (timedelta(days=1, hours=4, minutes=9), "1 d 4 h", "1天4小时"),
])
def test_format_age(age: timedelta, en: str, zh: str) -> None:
    assert (format_age(age, "en"), format_age(age, "zh")) == (en, zh)


# --- chat payloads --------------------------------------------------------------------------

def test_all_payloads_are_json_serialisable() -> None:
    for fmt in FORMATS:
        json.dumps(webhook_payload(fmt, notice(language="zh")), ensure_ascii=False)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown webhook format 'teams'"):
        webhook_payload("teams", notice())


def test_wecom_markdown_shape() -> None:
    payload = webhook_payload("wecom", notice())
    assert set(payload) == {"msgtype", "markdown"}
    assert payload["msgtype"] == "markdown"
    assert set(payload["markdown"]) == {"content"}
    content = payload["markdown"]["content"]
    assert content.startswith("**Escalation: Li Na has not replied in 17 min**")
    assert "[Open in webmail](https://mail.example.com/x)" in content


def test_wecom_content_stays_under_4096_bytes() -> None:
    content = webhook_payload("wecom", notice(subject="询" * 3000))["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096


def test_dingtalk_markdown_has_title_and_text() -> None:
    payload = webhook_payload("dingtalk", notice(language="zh"))
    assert payload["msgtype"] == "markdown"
    assert payload["markdown"]["title"] == "升级：Li Na17分钟未回复"
    assert "客户" in payload["markdown"]["text"]


def test_feishu_post_shape() -> None:
    payload = webhook_payload("feishu", notice(language="zh"))
    assert payload["msg_type"] == "post"
    post = payload["content"]["post"]["zh_cn"]
    assert post["title"].startswith("升级")
    assert all(isinstance(line, list) and line[0]["tag"] in ("text", "a") for line in post["content"])
    assert post["content"][-1] == [{"tag": "a", "text": "Open in webmail", "href": "https://mail.example.com/x"}]


def test_feishu_text_shape() -> None:
    payload = webhook_payload("feishu_text", notice())
    assert payload["msg_type"] == "text" and payload["content"]["text"].startswith("Escalation")


def test_slack_text_and_blocks() -> None:
    payload = webhook_payload("slack", notice())
    assert payload["text"] == "Escalation: Li Na has not replied in 17 min"
    header, section, context = payload["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert section["text"]["type"] == "mrkdwn"
    assert "Acme GmbH &lt;buyer@acme.de&gt;" in section["text"]["text"]
    assert context["elements"][0]["text"] == "<https://mail.example.com/x|Open in webmail>"


def test_generic_json_fields() -> None:
    payload = webhook_payload("json", notice())
    assert payload["kind"] == "escalate" and payload["age_seconds"] == 17 * 60
    assert payload["message_id"] == "<abc@acme.de>"  # plain JSON: no markup, nothing escaped
    assert payload["links"] == [{"label": "Open in webmail", "url": "https://mail.example.com/x"}]


def test_buyer_subject_cannot_mention_everyone_or_inject_markup() -> None:
    hostile = notice(subject='<@all> <font color="warning">PAY NOW</font> **[click](http://evil)** <!channel>')
    wecom = webhook_payload("wecom", hostile)["markdown"]["content"]
    assert "<@all>" not in wecom and "<font" not in wecom and "](http://evil)" not in wecom
    slack = webhook_payload("slack", hostile)
    assert "<!channel>" not in json.dumps(slack)
    feishu = json.dumps(webhook_payload("feishu", hostile), ensure_ascii=False)
    assert "<@all>" not in feishu


def test_notice_threads_on_the_forward_and_refuses_anything_but_a_message_id() -> None:
    from types import SimpleNamespace

    from mailrouter.act.outgoing import notice_email
    from tests.mailcheck import parsed

    box = SimpleNamespace(display_name="Sales", address="sales@example.com")
    now = datetime(2026, 11, 17, 10, 0, tzinfo=timezone.utc)
    threaded = parsed(notice_email(box, "li@example.com", "s", "b", "<n@example.com>", now, b"k" * 32,
                                   thread_on="<fwd.1@example.com>"))
    assert (threaded["In-Reply-To"], threaded["References"]) == ("<fwd.1@example.com>",) * 2
    forged = parsed(notice_email(box, "li@example.com", "s", "b", "<n@example.com>", now, b"k" * 32,
                                 thread_on="<a@b>\r\nBcc: x@evil.test"))
    assert forged["In-Reply-To"] is None and forged["Bcc"] is None


def test_excerpt_is_folded_and_cut_at_a_word() -> None:
    from mailrouter.sla.sweep import excerpt

    assert excerpt("Bonjour,\n\n  nous cherchons\t200 lampes", 300) == "Bonjour, nous cherchons 200 lampes"
    assert excerpt("one two three four", 9) == "one two…"
