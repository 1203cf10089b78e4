"""Chat notices kept in the database until their batch is posted (issue 15 item 3).

A notice for the chat groups is written as one `chat_posts` row per channel in the same
transaction as the ladder step or collision it tells of, handed to the webhook sender after
the commit, and deleted once its post is done (delivered, or given up as the sender gives up
on a permanent error). A daemon killed inside a batch window leaves the rows behind; the next
start posts them at once (`resume`), one post per channel: they have waited long enough. So a post may come
twice (the POST went out and the process died before the delete), never not at all.

Not yet done: several instances on one database each resume every row at start, so a row
another instance holds for its window may be posted twice.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.config.schema import Config
from mailrouter.sla.notify import Link, Notice, NoticeKind
from mailrouter.sla.webhook import WebhookSender, WebhookTarget
from mailrouter.store import ChatPostRow

log = logging.getLogger("mailrouter.webhook")


@dataclass(frozen=True)
class Queued:
    """A chat_posts row, ready to hand to the sender once its transaction has committed."""

    row: int
    target: str
    notice: Notice
    mention: str | None
    queued_at: datetime


def for_channel(notice: Notice, target: WebhookTarget, config: Config) -> tuple[WebhookTarget, Notice, str | None]:
    """(target, the notice in the channel's language, the chat id of the rep to @mention)."""
    rep = config.reps.get(notice.rep_id)
    mention = rep.chat_ids.get(target.platform) if rep else None
    return target, replace(notice, language=target.language or notice.language), mention


def notice_json(notice: Notice) -> str:
    data = asdict(notice)
    data.update(kind=notice.kind.value, age=notice.age.total_seconds())
    return json.dumps(data, ensure_ascii=False)


def notice_from_json(text: str) -> Notice:
    data = json.loads(text)
    data.update(kind=NoticeKind(data["kind"]), age=timedelta(seconds=data["age"]),
                links=tuple(Link(**link) for link in data.get("links", ())))
    return Notice(**data)


def queue_chat(session: Session, config: Config, notices: Iterable[Notice], now: datetime) -> list[Queued]:
    """One row per notice and channel, in the channel's language with its @mention, inside the
    caller's transaction."""
    rows = [(ChatPostRow(target=target.name, notice=notice_json(worded), mention=mention, queued_at=now), worded)
            for notice in notices for target, worded, mention in
            (for_channel(notice, t, config) for t in config.sla.webhooks)]
    session.add_all(row for row, _ in rows)
    session.flush()  # the ids, so the sender can say which rows a post carried
    return [Queued(row.id, row.target, worded, row.mention, now) for row, worded in rows]


def hand_over(webhooks: WebhookSender, config: Config, queued: Iterable[Queued],
              window: float | None = None) -> None:
    """Give committed rows to the sender: each waits for its channel's batch window, or
    `window` seconds (0 after a restart)."""
    targets = {t.name: t for t in config.sla.webhooks}
    for item in queued:
        target = targets.get(item.target)
        if target is not None:  # else resume() dropped it already
            webhooks.notify(target, item.notice, item.mention, row=item.row, window=window)


def resume(sessions: sessionmaker[Session], webhooks: WebhookSender, config: Config) -> int:
    """At start: post what an earlier run queued and did not post (it died inside a window).
    Rows for a channel no longer configured are dropped with a line in the log."""
    targets = {t.name for t in config.sla.webhooks}
    with sessions.begin() as session:
        rows = session.scalars(select(ChatPostRow).order_by(ChatPostRow.id)).all()
        gone = [row.id for row in rows if row.target not in targets]
        if gone:
            session.execute(delete(ChatPostRow).where(ChatPostRow.id.in_(gone)))
            log.warning("dropped %d queued chat notice(s) for channel(s) no longer configured", len(gone))
        waiting = [Queued(row.id, row.target, notice_from_json(row.notice), row.mention, row.queued_at)
                   for row in rows if row.target in targets]
    if waiting:
        log.info("posting %d chat notice(s) queued before the restart", len(waiting))
    hand_over(webhooks, config, waiting, window=0.0)
    return len(waiting)


def forget_posted(sessions: sessionmaker[Session]) -> Callable[[list[int]], None]:
    """The sender's on_posted: delete the rows of a post that is done."""
    def forget(rows: list[int]) -> None:
        with sessions.begin() as session:
            session.execute(delete(ChatPostRow).where(ChatPostRow.id.in_(rows)))
    return forget
