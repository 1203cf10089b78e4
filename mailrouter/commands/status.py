"""`mailrouter status`: the daemon's health as the database records it, for a person at a shell.

It reads only the database (WAL lets it read while the daemon writes), so it works whether
or not the daemon is running, and answers the questions asked on a bad morning: is mail still
being handled, is anything stuck, are reps behind?
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.config.schema import Config
from mailrouter.reports.backlog import Backlog, backlog
from mailrouter.reports.render import width
from mailrouter.store import (FILED, AssignmentRow, ConnectionProblemRow, LeaseRow, MessageRow, OutboxRow,
                              SlaStepRow)


@dataclass(frozen=True)
class LastMessage:
    at: datetime
    message_id: str
    outcome: str


@dataclass(frozen=True)
class NotConnected:
    """The daemon could not connect to this mailbox or reply source (runtime/connections.py)."""

    kind: str  # refused (a person must act) | unreachable
    reason: str  # as the server or the socket said it
    since: datetime
    tried_age: timedelta  # since the last try: hours mean the daemon is not running


@dataclass(frozen=True)
class MailboxStatus:
    name: str
    last: LastMessage | None
    today: dict[str, int]  # outcome -> messages received since local midnight
    unfiled: int
    oldest_unfiled_age: timedelta | None
    worked_by: WorkedBy | None = None  # the instance holding the mailbox's lease (lease.py)
    not_connected: NotConnected | None = None


@dataclass(frozen=True)
class WorkedBy:
    holder: str  # host:pid
    since: datetime
    seen_age: timedelta  # since the holder last renewed: minutes mean it is gone


@dataclass(frozen=True)
class StatusSummary:
    now: datetime
    mailboxes: tuple[MailboxStatus, ...]
    outbox_depth: int
    outbox_oldest_age: timedelta | None  # since the message arrived
    open_assignments: int
    overdue_assignments: int  # open and past their first-reply due time
    failing_outbox: int = 0  # pending forwards that failed at least once
    backlog: Backlog | None = None  # waiting for a person: the report's definition (reports/backlog.py)
    ladder_today: tuple[int, int] = (0, 0)  # ladder steps (taken, skipped after downtime) since midnight
    reply_sources_down: tuple[tuple[str, NotConnected], ...] = ()  # (name, why) of configured ones


def status_summary(sessions: sessionmaker[Session], config: Config, now: datetime) -> StatusSummary:
    since = local_midnight(now, config)
    with sessions() as session:
        mailboxes = tuple(_mailbox_status(session, name, now, since)
                          for name in _mailbox_names(session, config))
        depth, oldest, failing = _outbox(session)
        open_count, overdue = _assignments(session, now)
        waiting = backlog(session, now)
        ladder = _ladder_steps(session, since)
        sources = tuple((src.name, down) for src in config.sla.reply_sources
                        if (down := _not_connected(session, f"reply source {src.name}", now)) is not None)
    return StatusSummary(now.astimezone(config.timezone), mailboxes, depth, _age(now, oldest), open_count,
                         overdue, failing, waiting, ladder, sources)


def _not_connected(session: Session, name: str, now: datetime) -> NotConnected | None:
    row = session.get(ConnectionProblemRow, name)
    if row is None:
        return None
    return NotConnected(row.kind, row.reason, row.since, _age(now, row.tried_at) or timedelta(0))


def local_midnight(now: datetime, config: Config) -> datetime:
    """'Today' is the company's day (config timezone), not UTC's."""
    local = now.astimezone(config.timezone)
    return datetime.combine(local.date(), time(0), tzinfo=config.timezone)


def _mailbox_names(session: Session, config: Config) -> list[str]:
    # Configured ones first, then any the database still has from a mailbox since removed.
    names = [m.name for m in config.mailboxes]
    stored = session.scalars(select(MessageRow.mailbox).distinct()).all()
    return names + sorted(set(stored) - set(names))


def _mailbox_status(session: Session, name: str, now: datetime, since: datetime) -> MailboxStatus:
    last = session.execute(select(MessageRow.received_at, MessageRow.message_id, MessageRow.outcome)
                           .where(MessageRow.mailbox == name)
                           .order_by(MessageRow.received_at.desc(), MessageRow.id.desc()).limit(1)).first()
    today = Counter(dict(session.execute(
        select(MessageRow.outcome, func.count()).where(
            MessageRow.mailbox == name, MessageRow.received_at >= since).group_by(MessageRow.outcome)).all()))
    unfiled, oldest = session.execute(select(func.count(), func.min(MessageRow.received_at)).where(
        MessageRow.mailbox == name, MessageRow.state != FILED)).one()
    lease = session.get(LeaseRow, f"mailbox {name}")
    worked_by = WorkedBy(lease.holder, lease.acquired_at, _age(now, lease.renewed_at) or timedelta(0)) \
        if lease is not None else None
    return MailboxStatus(name, LastMessage(*last) if last else None, dict(sorted(today.items())),
                         int(unfiled), _age(now, oldest), worked_by, _not_connected(session, f"mailbox {name}", now))


def _outbox(session: Session) -> tuple[int, datetime | None, int]:
    pending = OutboxRow.status == "pending"
    # Outer join: a notice (SLA reminder) has no message row but still waits in the outbox.
    depth, oldest = session.execute(
        select(func.count(OutboxRow.id), func.min(MessageRow.received_at))
        .select_from(OutboxRow).outerjoin(MessageRow, MessageRow.id == OutboxRow.message)
        .where(pending)).one()
    failing = session.scalar(select(func.count()).select_from(OutboxRow)
                             .where(pending, OutboxRow.attempts > 0)) or 0
    return int(depth), oldest, int(failing)


def _assignments(session: Session, now: datetime) -> tuple[int, int]:
    is_open = (AssignmentRow.first_reply_at.is_(None), AssignmentRow.ended_at.is_(None))
    open_count = session.scalar(select(func.count()).select_from(AssignmentRow).where(*is_open)) or 0
    overdue = session.scalar(select(func.count()).select_from(AssignmentRow).where(
        *is_open, AssignmentRow.due_at.is_not(None), AssignmentRow.due_at < now)) or 0
    return int(open_count), int(overdue)


def _ladder_steps(session: Session, since: datetime) -> tuple[int, int]:
    """(taken, skipped) ladder steps since `since`: skipped ones were overtaken by a later step
    due at the same time (sla/ladder.py latest_only), e.g. after the daemon was stopped."""
    skipped = SlaStepRow.detail.like("skipped:%")
    taken, passed = session.execute(select(func.count(), func.count().filter(skipped))
                                    .where(SlaStepRow.done_at >= since)).one()
    return int(taken or 0) - int(passed or 0), int(passed or 0)


def _age(now: datetime, then: datetime | None) -> timedelta | None:
    if then is None:
        return None
    if then.tzinfo is None:  # an aggregate can drop the column type's UTC marker
        then = then.replace(tzinfo=timezone.utc)
    return max(now - then, timedelta(0))


# -- text

LABELS = {
    "en": {"title": "mailrouter status at {at}", "mailbox": "mailbox {name}:", "last": "last message",
           "ago": "{age} ago", "none_yet": "none yet", "today": "today", "none": "none",
           "unfiled": "not yet filed", "outbox": "outbox", "waiting_n": "{n} waiting",
           "retried": "{n} being retried", "assignments": "assignments",
           "open": "{n} awaiting a first reply, {overdue} overdue", "backlog": "backlog",
           "backlog_n": "{n} waiting for a person, as the report counts them", "oldest": "oldest {age}",
           "ladder": "ladder today", "ladder_n": "{taken} step(s) taken, {skipped} skipped after downtime",
           "worked_by": "worked by", "worked_by_v": "{holder} since {since} (last seen {seen} ago)",
           "connection": "connection", "reply_source": "reply source {name}:",
           "down_v": "not connected since {since}, {why}: {reason} (last tried {tried} ago)",
           "refused": "login refused", "unreachable": "unreachable"},
    "zh": {"title": "mailrouter 状态（{at}）", "mailbox": "邮箱 {name}：", "last": "最近一封",
           "ago": "{age}前", "none_yet": "暂无", "today": "今天", "none": "无",
           "unfiled": "尚未归档", "outbox": "待发队列", "waiting_n": "{n} 封等待",
           "retried": "{n} 封正在重试", "assignments": "分配",
           "open": "{n} 个等待首次回复，{overdue} 个已超时", "backlog": "待人处理",
           "backlog_n": "{n}（与报表口径相同）", "oldest": "最早 {age}",
           "ladder": "今日升级步骤", "ladder_n": "执行 {taken} 步，停机后跳过 {skipped} 步",
           "worked_by": "处理实例", "worked_by_v": "{holder}，自 {since} 起（{seen}前确认）",
           "connection": "连接", "reply_source": "回复来源 {name}：",
           "down_v": "未连接，自 {since} 起，{why}：{reason}（{tried}前最后一次尝试）",
           "refused": "登录被拒绝", "unreachable": "无法连接"},
}
OUTCOMES_ZH = {"routed": "已分配", "ignored": "已忽略", "unrecognized": "未识别", "duplicate": "重复",
               "quarantined": "已隔离", "undeliverable": "无法投递"}
LABEL_COLUMNS = 17  # the value column, in terminal columns (CJK labels count two per character)


def format_status(summary: StatusSummary, language: str = "en") -> str:
    """The summary as text in `language` (en, zh); times in the summary's (the config's) zone."""
    t = LABELS["zh" if language == "zh" else "en"]
    zh = language == "zh"

    def line(label: str, value: str, indent: str = "") -> str:
        head = indent + label
        return head + " " * max(1, LABEL_COLUMNS - width(head)) + value

    def oldest(age: timedelta | None) -> str:
        return "" if age is None else (f"（{t['oldest'].format(age=format_age(age))}）" if zh
                                       else f" ({t['oldest'].format(age=format_age(age))})")

    def down(problem: NotConnected) -> str:
        return t["down_v"].format(since=f"{problem.since.astimezone(summary.now.tzinfo):%Y-%m-%d %H:%M}",
                                  why=t["refused" if problem.kind == "refused" else "unreachable"],
                                  reason=problem.reason, tried=format_age(problem.tried_age))

    lines = [t["title"].format(at=f"{summary.now:%Y-%m-%d %H:%M:%S %Z}")]
    for mb in summary.mailboxes:
        lines.append(t["mailbox"].format(name=mb.name))
        last = (f"{t['ago'].format(age=format_age(summary.now - mb.last.at))}, {mb.last.outcome} "
                f"{mb.last.message_id or '(no Message-ID)'}") if mb.last else t["none_yet"]
        lines.append(line(t["last"], last, "  "))
        today = ", ".join(f"{n} {OUTCOMES_ZH.get(o, o) if zh else o}" for o, n in mb.today.items()) or t["none"]
        lines.append(line(t["today"], today, "  "))
        lines.append(line(t["unfiled"], f"{mb.unfiled}" + oldest(mb.oldest_unfiled_age), "  "))
        if mb.worked_by is not None:
            w = mb.worked_by
            lines.append(line(t["worked_by"], t["worked_by_v"].format(
                holder=w.holder, since=f"{w.since.astimezone(summary.now.tzinfo):%Y-%m-%d %H:%M}",
                seen=format_age(w.seen_age)), "  "))
        if mb.not_connected is not None:
            lines.append(line(t["connection"], down(mb.not_connected), "  "))
    for name, problem in summary.reply_sources_down:
        lines += [t["reply_source"].format(name=name), line(t["connection"], down(problem), "  ")]
    retried = (", " + t["retried"].format(n=summary.failing_outbox)) if summary.failing_outbox else ""
    lines.append(line(t["outbox"], t["waiting_n"].format(n=summary.outbox_depth)
                      + oldest(summary.outbox_oldest_age) + retried))
    lines.append(line(t["assignments"], t["open"].format(n=summary.open_assignments,
                                                          overdue=summary.overdue_assignments)))
    if summary.backlog is not None:
        age = (None if summary.backlog.oldest_age_seconds is None
               else timedelta(seconds=summary.backlog.oldest_age_seconds))
        lines.append(line(t["backlog"], t["backlog_n"].format(n=summary.backlog.count) + oldest(age)))
    if any(summary.ladder_today):
        taken, skipped = summary.ladder_today
        lines.append(line(t["ladder"], t["ladder_n"].format(taken=taken, skipped=skipped)))
    return "\n".join(lines)


def _oldest(age: timedelta | None) -> str:
    return f" (oldest {format_age(age)})" if age is not None else ""


def format_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"
