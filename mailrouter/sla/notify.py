"""Notifications of the first-reply clock: one Notice, rendered as an email or a chat message.

Pure: the email comes from templates/<lang>/notice_<kind>.txt.j2 (first line = subject), the
chat payloads from short per-language phrases here, because chat messages are a title and a
few fields, not a letter. Sending lives in webhook.py.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jinja2

from mailrouter.act.templating import candidate_languages, render


class NoticeKind(str, enum.Enum):
    REMIND = "remind"  # to the rep: an inquiry is waiting
    ESCALATE = "escalate"  # to the supervisor: the rep has not replied
    REASSIGN = "reassign"  # to the new rep: it is yours now
    REASSIGNED_AWAY = "reassigned_away"  # to the previous rep: it was given to someone else
    COLLISION = "collision"  # to the supervisor: another rep wrote to this rep's customer


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Notice:
    """Everything any renderer may show; names are display names, not addresses."""

    kind: NoticeKind
    rep: str  # the rep the inquiry belongs to (for REASSIGN: the new owner)
    customer: str  # buyer's name and/or address, as the registry knows them
    subject: str  # the inquiry's subject (buyer-written: never trusted as markup)
    message_id: str
    age: timedelta  # wall time since arrival
    language: str = "en"  # of the recipient, not of the buyer
    supervisor: str | None = None
    other_rep: str | None = None  # REASSIGN: previous rep; REASSIGNED_AWAY: new rep; COLLISION: who wrote
    step: str = ""  # the ladder step's key, e.g. "escalate@15m"
    links: tuple[Link, ...] = ()
    excerpt: str = ""  # the start of the buyer's text (buyer-written: body only, never a header)
    rep_id: str = ""  # config id of `rep`, to @mention them in chat


@dataclass(frozen=True)
class RenderedNotice:
    subject: str
    body: str


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(value: str) -> str:
    """Buyer text on one line: a CR/LF in a subject would otherwise start a new header."""
    return _CONTROL.sub(" ", value).strip()


def _zh(language: str | None) -> bool:
    return "zh" in candidate_languages(language)


def format_age(age: timedelta, language: str | None = "en") -> str:
    """"1 h 5 min" / "1小时5分钟": the two largest units, since seconds only add noise."""
    minutes = max(0, int(age.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    units = ("天", "小时", "分钟") if _zh(language) else (" d", " h", " min")
    parts = [f"{n}{u}" for n, u in zip((days, hours, mins), units) if n][:2]
    if not parts:
        parts = [f"0{units[2]}"]
    return ("" if _zh(language) else " ").join(parts)


def notice_context(notice: Notice) -> dict[str, Any]:
    """Template variables: the notice's fields made one-line, plus `age_text`."""
    return {
        "kind": notice.kind.value,
        "rep": one_line(notice.rep),
        "customer": one_line(notice.customer),
        "subject": one_line(notice.subject) or "(no subject)",
        "message_id": one_line(notice.message_id),
        "age_text": format_age(notice.age, notice.language),
        "supervisor": one_line(notice.supervisor or ""),
        "other_rep": one_line(notice.other_rep or ""),
        "step": one_line(notice.step),
        "excerpt": one_line(notice.excerpt),
        "links": [Link(one_line(k.label), one_line(k.url)) for k in notice.links],
    }


def render_notice(env: jinja2.Environment, notice: Notice) -> RenderedNotice:
    """Email text of a notice in the recipient's language (English when missing)."""
    text = render(env, f"notice_{notice.kind.value}.txt.j2", notice.language, **notice_context(notice))
    subject, _, body = text.partition("\n")
    return RenderedNotice(subject=one_line(subject), body=body.lstrip("\n"))


# --- chat -------------------------------------------------------------------------------

_TITLES = {
    "en": {
        NoticeKind.REMIND: "Reminder: inquiry waiting {age}",
        NoticeKind.ESCALATE: "Escalation: {rep} has not replied in {age}",
        NoticeKind.REASSIGN: "Inquiry reassigned to {rep}",
        NoticeKind.REASSIGNED_AWAY: "Inquiry taken from {rep}",
        NoticeKind.COLLISION: "Collision: {other_rep} wrote to a customer of {rep}",
    },
    "zh": {
        NoticeKind.REMIND: "提醒：询盘已等待{age}",
        NoticeKind.ESCALATE: "升级：{rep}{age}未回复",
        NoticeKind.REASSIGN: "询盘已转给{rep}",
        NoticeKind.REASSIGNED_AWAY: "询盘已从{rep}转出",
        NoticeKind.COLLISION: "撞单：{other_rep}联系了{rep}的客户",
    },
}
_LABELS = {
    "en": {"customer": "Customer", "subject": "Subject", "rep": "Rep", "age": "Waiting",
           "other_rep": "Other rep", "excerpt": "Excerpt", "message_id": "Message-ID"},
    "zh": {"customer": "客户", "subject": "主题", "rep": "业务员", "age": "已等待",
           "other_rep": "相关业务员", "excerpt": "摘要", "message_id": "邮件ID"},
}


def chat_title(notice: Notice) -> str:
    lang = "zh" if _zh(notice.language) else "en"
    ctx = notice_context(notice)
    return _TITLES[lang][notice.kind].format(age=ctx["age_text"], rep=ctx["rep"], other_rep=ctx["other_rep"])


def chat_fields(notice: Notice) -> list[tuple[str, str]]:
    """(label, value) rows shown under the title, empty values left out."""
    lang = "zh" if _zh(notice.language) else "en"
    ctx = notice_context(notice)
    values = {"customer": ctx["customer"], "subject": ctx["subject"], "rep": ctx["rep"],
              "age": ctx["age_text"], "other_rep": ctx["other_rep"], "excerpt": ctx["excerpt"],
              "message_id": ctx["message_id"]}
    return [(_LABELS[lang][key], value) for key, value in values.items() if value]


def _no_tags(text: str) -> str:
    # WeCom, DingTalk and Feishu read <font>, <at> and friends inside messages; a buyer's
    # subject must not be able to mention @all or restyle the alert.
    return text.replace("<", "‹").replace(">", "›")


_MD_SPECIAL = re.compile(r"([\\`*_#|~])")


def md(text: str) -> str:
    """Buyer text made inert in the markdown dialects of WeCom and DingTalk.

    Links and tags are what can do harm, and whether these dialects honour backslash escapes
    is not documented, so brackets become full-width lookalikes; the rest is only style.
    """
    text = _no_tags(text).replace("[", "［").replace("]", "］")
    return _MD_SPECIAL.sub(r"\\\1", text)


def slack_escape(text: str) -> str:
    """Slack's documented escaping: only &, < and > are control characters in mrkdwn text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncate_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "..."


WECOM_LIMIT = 4096  # bytes of markdown.content, per WeCom's group robot docs
DINGTALK_LIMIT = 20000
SLACK_HEADER_LIMIT = 150


def _markdown(notice: Notice) -> str:
    rows = [f"**{md(chat_title(notice))}**", ""]
    rows += [f"> {md(label)}: {md(value)}" for label, value in chat_fields(notice)]
    rows += [f"[{md(link.label)}]({link.url})" for link in notice.links]
    return "\n".join(rows)


def payload_json(notice: Notice) -> dict[str, Any]:
    """A generic JSON body for home-made receivers: plain fields, no markup."""
    ctx = notice_context(notice)
    return {
        "kind": notice.kind.value, "title": chat_title(notice),
        "text": "\n".join(f"{k}: {v}" for k, v in chat_fields(notice)),
        "rep": ctx["rep"], "supervisor": ctx["supervisor"] or None,
        "other_rep": ctx["other_rep"] or None, "customer": ctx["customer"],
        "subject": ctx["subject"], "message_id": ctx["message_id"],
        "age_seconds": int(notice.age.total_seconds()), "step": ctx["step"],
        "language": notice.language,
        "links": [{"label": k.label, "url": k.url} for k in ctx["links"]],
    }


def payload_wecom(notice: Notice) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": _truncate_bytes(_markdown(notice), WECOM_LIMIT)}}


def payload_dingtalk(notice: Notice) -> dict[str, Any]:
    # DingTalk shows `title` in the conversation list and the notification, `text` when opened.
    return {"msgtype": "markdown", "markdown": {
        "title": _no_tags(chat_title(notice)),
        "text": _truncate_bytes(_markdown(notice), DINGTALK_LIMIT),
    }}


def payload_feishu(notice: Notice) -> dict[str, Any]:
    """Feishu rich text ("post"): structured tags, so no markup parsing of buyer text at all."""
    lines: list[list[dict[str, str]]] = [
        [{"tag": "text", "text": _no_tags(f"{label}: {value}")}] for label, value in chat_fields(notice)
    ]
    lines += [[{"tag": "a", "text": _no_tags(link.label), "href": link.url}] for link in notice.links]
    locale = "zh_cn" if _zh(notice.language) else "en_us"
    return {"msg_type": "post", "content": {"post": {locale: {
        "title": _no_tags(chat_title(notice)), "content": lines}}}}


def payload_feishu_text(notice: Notice) -> dict[str, Any]:
    text = "\n".join([chat_title(notice)] + [f"{k}: {v}" for k, v in chat_fields(notice)])
    return {"msg_type": "text", "content": {"text": _no_tags(text)}}


def payload_slack(notice: Notice) -> dict[str, Any]:
    title = chat_title(notice)
    fields = "\n".join(f"*{slack_escape(k)}:* {slack_escape(v)}" for k, v in chat_fields(notice))
    links = " · ".join(f"<{link.url}|{slack_escape(link.label)}>" for link in notice.links)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:SLACK_HEADER_LIMIT]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": fields}},
    ]
    if links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]})
    # `text` is the fallback shown in notifications and by clients that cannot draw blocks.
    return {"text": slack_escape(title), "blocks": blocks}


PAYLOADS = {
    "json": payload_json,
    "wecom": payload_wecom,
    "dingtalk": payload_dingtalk,
    "feishu": payload_feishu,
    "feishu_text": payload_feishu_text,
    "slack": payload_slack,
}
FORMATS = tuple(PAYLOADS)


# --- batches: the notices of one minute for one channel, in one post ------------------------

Mentioned = tuple[Notice, str | None]  # a notice and the chat user id of the rep to @mention


def _batch_title(items: list[Mentioned]) -> str:
    if len(items) == 1:
        return chat_title(items[0][0])
    return (f"{len(items)} 条询盘通知" if _zh(items[0][0].language) else f"{len(items)} inquiry notices")


def _md_batch(items: list[Mentioned], mention: str) -> str:
    """Markdown sections, one per notice; `mention` formats an id (ids are validated config)."""
    return "\n\n".join(_markdown(n) + (f"\n{mention.format(m)}" if m else "") for n, m in items)


def batch_payload(kind: str, items: list[Mentioned]) -> dict[str, Any]:
    """One post for several notices (or one with a mention); one plain notice posts as before."""
    if len(items) == 1 and items[0][1] is None:
        return webhook_payload(kind, items[0][0])
    ids = [m for _n, m in items if m]
    if kind == "wecom":  # group robots render <@userid> in markdown
        return {"msgtype": "markdown", "markdown": {"content": _truncate_bytes(_md_batch(items, "<@{}>"), WECOM_LIMIT)}}
    if kind == "dingtalk":  # the @ must be in the text as well as in atUserIds
        return {"msgtype": "markdown", "markdown": {"title": _no_tags(_batch_title(items)),
                                                    "text": _truncate_bytes(_md_batch(items, "@{}"), DINGTALK_LIMIT)},
                "at": {"atUserIds": ids, "isAtAll": False}}
    if kind == "feishu":
        lines: list[list[dict[str, str]]] = []
        for notice, m in items:
            lines.append([{"tag": "text", "text": _no_tags(chat_title(notice))}]
                         + ([{"tag": "at", "user_id": m}] if m else []))
            lines += [[{"tag": "text", "text": _no_tags(f"{k}: {v}")}] for k, v in chat_fields(notice)]
        locale = "zh_cn" if _zh(items[0][0].language) else "en_us"
        return {"msg_type": "post", "content": {"post": {locale: {"title": _no_tags(_batch_title(items)),
                                                                    "content": lines}}}}
    if kind == "feishu_text":
        parts = ["\n".join([_no_tags(chat_title(n))] + [_no_tags(f"{k}: {v}") for k, v in chat_fields(n)])
                 + (f' <at user_id="{m}"></at>' if m else "") for n, m in items]
        return {"msg_type": "text", "content": {"text": "\n\n".join(parts)}}
    if kind == "slack":
        blocks: list[dict[str, Any]] = []
        for notice, m in items:
            fields = "\n".join(f"*{slack_escape(k)}:* {slack_escape(v)}" for k, v in chat_fields(notice))
            head = f"*{slack_escape(chat_title(notice))}*" + (f" <@{m}>" if m else "")
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{head}\n{fields}"}})
        return {"text": slack_escape(_batch_title(items)), "blocks": blocks[:50]}  # Slack's block limit
    if kind == "json":
        return {"notices": [{**payload_json(n), "mention": m} for n, m in items]}
    raise ValueError(f"unknown webhook format {kind!r} (known: {', '.join(FORMATS)})")


def webhook_payload(kind: str, notice: Notice) -> dict[str, Any]:
    """The JSON body for one webhook format (see FORMATS); ValueError for an unknown one."""
    try:
        return PAYLOADS[kind](notice)
    except KeyError:
        raise ValueError(f"unknown webhook format {kind!r} (known: {', '.join(FORMATS)})") from None
