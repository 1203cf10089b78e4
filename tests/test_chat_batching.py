"""Chat posts: one post per channel per batch window, @mentions, the channel's language (issue 15 item 3)."""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

from mailrouter.config.load import ConfigError, load_config
from mailrouter.sla.notify import Notice, NoticeKind, batch_payload
from mailrouter.sla.sweep import for_channel
from mailrouter.sla.webhook import WebhookSender, WebhookTarget, webhook_from_config
from tests.factories import EXAMPLE_ENV, copy_example, example_config
from tests.test_notify_webhook import Receiver, receiver  # noqa: F401 (fixture)


def remind(subject: str, language: str = "en", rep_id: str = "li") -> Notice:
    return Notice(kind=NoticeKind.REMIND, rep="Li Na", customer="buyer@acme.de", subject=subject,
                  message_id="<m@acme.de>", age=timedelta(minutes=6), language=language, rep_id=rep_id)


def test_a_minutes_notices_go_out_as_one_post(receiver: Receiver) -> None:
    sender = WebhookSender(timeout=5)
    try:
        target = WebhookTarget("sales-group", receiver.url, "wecom", batch=0.5)
        for n in range(3):
            assert sender.notify(target, remind(f"RFQ {n}"), "LiNa")
        time.sleep(0.2)
        assert receiver.bodies == []  # still inside the window
        assert sender.flush(timeout=5)
    finally:
        sender.close(timeout=5)
    (body,) = receiver.bodies
    content = body["markdown"]["content"]
    assert all(f"RFQ {n}" in content for n in range(3)) and content.count("<@LiNa>") == 3


def test_closing_sends_a_waiting_batch_instead_of_dropping_it(receiver: Receiver) -> None:
    sender = WebhookSender(timeout=5)
    sender.notify(WebhookTarget("g", receiver.url, "wecom", batch=60), remind("RFQ late"))
    assert sender.close(timeout=5)
    assert "RFQ late" in receiver.bodies[0]["markdown"]["content"]


def test_mentions_in_each_platforms_own_way() -> None:
    items = [(remind("RFQ 1"), "manager4711"), (remind("RFQ 2"), None)]
    ding = batch_payload("dingtalk", items)
    assert ding["at"] == {"atUserIds": ["manager4711"], "isAtAll": False}
    assert "@manager4711" in ding["markdown"]["text"] and ding["markdown"]["title"] == "2 inquiry notices"
    feishu = batch_payload("feishu", [(remind("RFQ 1", "zh"), "ou_7d8a")])
    lines = feishu["content"]["post"]["zh_cn"]["content"]
    assert {"tag": "at", "user_id": "ou_7d8a"} in lines[0]
    assert '<at user_id="manager4711"></at>' in batch_payload("feishu_text", items[:1])["content"]["text"]
    assert "<@manager4711>" in batch_payload("slack", items)["blocks"][0]["text"]["text"]
    assert batch_payload("wecom", [(remind("RFQ 1"), None)]) == batch_payload("wecom", [(remind("RFQ 1"), None)])


def test_channel_language_and_the_reps_chat_id() -> None:
    config = example_config()
    config = replace(config, reps={**config.reps, "li": replace(config.reps["li"], chat_ids={"feishu": "ou_7d8a"})})
    target = WebhookTarget("cn-group", "https://example.invalid/hook", "feishu_text", language="zh")
    _t, notice, mention = for_channel(remind("RFQ 1", "en"), target, config)
    assert (notice.language, mention) == ("zh", "ou_7d8a")
    _t, notice, mention = for_channel(remind("RFQ 1", "en"), replace(target, format="wecom", language=None), config)
    assert (notice.language, mention) == ("en", None)


def test_chat_ids_and_webhook_keys_are_validated(tmp_path) -> None:
    path = copy_example(tmp_path)
    text = path.read_text(encoding="utf-8").replace(
        "[reps.li]\n", '[reps.li]\nchat_ids = { wecom = "Li<at>", teams = "li" }\n', 1)
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, environ=EXAMPLE_ENV)
        raise AssertionError("accepted")
    except ConfigError as exc:
        problems = [str(p) for p in exc.problems]
    assert any("reps.li.chat_ids.wecom" in p and "user id" in p for p in problems)
    assert any("reps.li.chat_ids.teams" in p and "unknown platform" in p for p in problems)
    _target, problems = webhook_from_config({"name": "g", "format": "wecom", "url_env": "U", "language": "fr",
                                             "batch": "1h"}, "config.toml", "sla.webhook[0].",
                                            {"U": "https://qyapi.weixin.qq.com/x"})
    assert {p.key for p in problems} == {"sla.webhook[0].language", "sla.webhook[0].batch"}


def test_notices_queued_by_a_run_that_died_are_posted_at_start_then_forgotten(receiver: Receiver, tmp_path) -> None:
    """Issue 15 item 3: the batch lived in memory only; now rows, drained by the next start."""
    from sqlalchemy import select

    from mailrouter.sla.chat import forget_posted, notice_from_json, notice_json, queue_chat, resume
    from mailrouter.store import ChatPostRow, open_database, utcnow

    target = WebhookTarget("sales-group", receiver.url, "wecom", batch=600)  # a long window: the run dies in it
    config = replace(example_config(), database=f"sqlite:///{tmp_path / 'c.db'}")
    config = replace(config, sla=replace(config.sla, webhooks=(target,)))
    sessions = open_database(config.database)
    notice = replace(remind("RFQ durable", rep_id="li"), excerpt="bitte Angebot", step="remind@5m")
    assert notice_from_json(notice_json(notice)) == notice
    with sessions.begin() as session:
        queue_chat(session, config, [notice], utcnow())  # ...and the process is gone before the post

    sender = WebhookSender(timeout=5, on_posted=forget_posted(sessions))
    try:
        assert resume(sessions, sender, config) == 1
        assert sender.flush(timeout=10)  # at once, not after another 10 minutes
    finally:
        sender.close(timeout=5)
    (body,) = receiver.bodies
    assert "RFQ durable" in body["markdown"]["content"]
    with sessions() as session:
        assert session.scalars(select(ChatPostRow)).all() == []
