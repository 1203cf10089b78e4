"""Start-up checks: log in to every server, so a wrong password shows at install time (`check`)
and a daemon that cannot work fails its start instead of looking active (`run`). `check` fails
on any of them; `run` only on a shared need or when no mailbox connects (start_plan): one
mailbox's dead or refusing server must not stop the others.

`check` adds what only a person can fix but the daemon could run with: SLA without any reply
source (the first-reply clock would never stop).
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import aiosmtplib
import jinja2

from mailrouter.act.outbox import smtp_client
from mailrouter.act.templating import make_environment
from mailrouter.config.credentials import CredentialError
from mailrouter.config.schema import Config
from mailrouter.intake.health import UNREACHABLE, outage_kind
from mailrouter.intake.imap import CONNECTION_LIMITS, ImapError, ImapSettings, Mailbox
from mailrouter.runtime.mailbox import imap_settings
from mailrouter.sla.replies import reply_settings

# `check` speaks the operator's language (issue 15 item 6); server error texts stay as the server gave them.
LABELS = {
    "en": {"imap": "IMAP {name} ({user} at {host}:{port})", "smtp": "SMTP {host}:{port}",
           "reply_source": "reply source {name} ({user} at {host}:{port})", "database": "database {url}",
           "spool": "spool folder {path}", "templates": "templates in {dirs}", "ok": "OK", "failed": "FAILED",
           "note": "note", "check_login": " (check host, port, tls and the password source)",
           "no_answer": "no answer within {seconds:.0f} s (a firewall dropping packets, or a server that hangs)",
           "lacks": "server lacks {caps}; mailrouter works around it",
           "no_keywords": "server does not keep custom keywords; folders and the database carry the state",
           "spool_error": "cannot write there: {reason} (set daemon.spool_dir to a folder the daemon may write)",
           "clock": "first-reply clock",
           "no_reply_source": "sla.enabled = true but there is no [[reply_source]], so no reply is ever seen "
                              "and every inquiry is reminded, escalated and reassigned; add a [[reply_source]], "
                              "set sla.enabled = false, or set sla.allow_no_reply_source = true if that is "
                              "what you want",
           "subject": "forward subject",
           "legacy_subject": "{path}: forward.subject_format = {old!r} is read as forward.labels = {new!r}: "
                             "internal labels now show to the rep in the forward's context line and "
                             "X-Mailrouter-Labels header, not in the subject a buyer's reply carries back; "
                             "rename the key to labels (and set customer_tag for a tag the buyer may see)",
           "summary": "{path}: OK — {mailboxes} mailbox(es), {reps} rep(s), {teams} team(s), "
                      "{rules} rule(s) from {files} file(s)"},
    "zh": {"imap": "IMAP {name}（{user}，{host}:{port}）", "smtp": "SMTP {host}:{port}",
           "reply_source": "回复来源 {name}（{user}，{host}:{port}）", "database": "数据库 {url}",
           "spool": "暂存目录 {path}", "templates": "模板目录 {dirs}", "ok": "正常", "failed": "失败",
           "note": "提示", "check_login": "（请检查 host、port、tls 和密码来源）",
           "no_answer": "{seconds:.0f} 秒内无应答（防火墙丢弃了数据包，或服务器挂起）",
           "lacks": "服务器不支持 {caps}；mailrouter 会自动绕过",
           "no_keywords": "服务器不保存自定义关键字；由文件夹和数据库记录状态",
           "spool_error": "无法写入：{reason}（请把 daemon.spool_dir 设为守护进程可写的文件夹）",
           "clock": "首次回复计时",
           "no_reply_source": "sla.enabled = true 但没有任何 [[reply_source]]，系统永远看不到回复，每封询盘都会"
                              "被提醒、升级并改派；请添加 [[reply_source]]，或设 sla.enabled = false，"
                              "如确属有意，请设 sla.allow_no_reply_source = true",
           "subject": "转发主题",
           "legacy_subject": "{path}：forward.subject_format = {old!r} 按 forward.labels = {new!r} 读取：内部标签"
                             "现在只在转发的概要行和 X-Mailrouter-Labels 头中给业务员看，不再出现在客户回复带回的"
                             "主题里；请把该键改名为 labels（客户可见的标签请设 customer_tag）",
           "summary": "{path}：正常 — {mailboxes} 个邮箱，{reps} 个业务员，{teams} 个团队，"
                      "{rules} 条规则（来自 {files} 个文件）"},
}


def labels(language: str) -> dict[str, str]:
    return LABELS["zh" if language == "zh" else "en"]


@dataclass(frozen=True)
class Finding:
    """One line of `check`: what was tried, the error (None: OK), and notes worth knowing."""

    label: str
    error: str | None
    notes: list[str] = field(default_factory=list)
    # the mailbox or reply source whose own login this is ("mailbox sales"); None: a shared need
    worker: str | None = None
    kind: str = UNREACHABLE  # of a failed login: REFUSED (a person must act) or UNREACHABLE


@dataclass(frozen=True)
class StartPlan:
    """What `run` does with the start-up checks: refuse (`refusal` says why) or start, with
    the workers whose own login failed (`down`) retrying on their own (issue 17)."""

    failed: list[Finding]
    refusal: str | None
    down: list[Finding]


def start_plan(findings: list[Finding], mailboxes: list[str]) -> StartPlan:
    """Shared needs (database, spool, templates, SMTP) refuse the start, and so does every
    mailbox failing (nothing to do; most likely the network or the config), so systemd's
    Restart= tries again; one mailbox's or reply source's own failing login does not stop
    the others."""
    failed = [f for f in findings if f.error]
    down = [f for f in failed if f.worker is not None]
    why = []
    if any(f.worker is None for f in failed):
        why.append("a need all mailboxes share failed")
    dead = {f.worker for f in down}
    if mailboxes and all(f"mailbox {name}" in dead for name in mailboxes):
        why.append(f"no mailbox could connect ({len(mailboxes)} tried)")
    return StartPlan(failed, "; ".join(why) or None, down)


# How long `run` waits for a mailbox's or reply source's start-up login once some mailbox is
# in: a server that does not answer (a firewall dropping packets) would otherwise hold every
# mailbox for its whole timeout, and two of them outlast systemd's 90 s start timeout.
START_WAIT = 15.0


@dataclass(frozen=True)
class _Login:
    label: str
    worker: str | None  # None: a shared need (SMTP), always waited for
    attempt: Callable[[], tuple[str | None, list[str], str]]  # (error, notes, kind)


def server_problems(config: Config, language: str = "en", wait: float | None = None) -> list[Finding]:
    """Every login (mailboxes, SMTP, each reply source with a login of its own), the spool
    folder and the templates: what the daemon needs before it starts. The logins run at once
    (within daemon.max_connections_per_server), so one slow server costs its own timeout, not
    everyone's; with `wait` (`run`), a mailbox or reply source still silent that long after
    the start, once a mailbox is in, is reported as not answering and left to its loop."""
    t = labels(language)
    CONNECTION_LIMITS.limit = config.connection_limit
    logins = [_Login(t["imap"].format(name=m.name, user=m.server.user, host=m.server.host, port=m.server.port),
                     f"mailbox {m.name}", partial(_check_imap, partial(imap_settings, m), t, True))
              for m in config.mailboxes]
    smtp = config.smtp.server
    logins.append(_Login(t["smtp"].format(host=smtp.host, port=smtp.port), None,
                         lambda: (_check_smtp(config), [], UNREACHABLE)))
    logins += [_Login(t["reply_source"].format(name=src.name, user=src.server.user, host=src.server.host,
                                               port=src.server.port),
                      f"reply source {src.name}", partial(_check_imap, partial(reply_settings, src, config), t))
               for src in config.sla.reply_sources if src.server is not None]  # shared_sent: its mailbox's login
    results = _all_at_once(logins, wait, t)
    results.append(_check_database(config, language))
    results.append(Finding(t["spool"].format(path=config.spool_dir), _check_spool(config, t)))
    results.append(Finding(t["templates"].format(dirs=", ".join(map(str, config.template_dirs))),
                           template_problem(config)))
    return results


def _all_at_once(logins: list[_Login], wait: float | None, t: dict[str, str]) -> list[Finding]:
    """Run every login in a thread of its own; their findings in the given order."""
    answers: dict[int, Finding] = {}
    changed = threading.Condition()

    def attempt(index: int, login: _Login) -> None:
        try:
            error, notes, kind = login.attempt()
        except Exception as exc:  # noqa: BLE001 - one login's surprise is its finding, not a hung start
            error, notes, kind = f"{type(exc).__name__}: {exc}", [], UNREACHABLE
        with changed:
            answers[index] = Finding(login.label, error, notes, login.worker, kind)
            changed.notify_all()

    for index, login in enumerate(logins):
        threading.Thread(target=attempt, args=(index, login), name=f"check-{index}", daemon=True).start()
    deadline = None if wait is None else time.monotonic() + wait
    with changed:
        while not _enough(logins, answers, deadline):
            changed.wait(None if deadline is None else max(deadline - time.monotonic(), 0.05))
        late = "" if wait is None else t["no_answer"].format(seconds=wait)
        return [answers.get(i) or Finding(login.label, late, [], login.worker, UNREACHABLE)
                for i, login in enumerate(logins)]


def _enough(logins: list[_Login], answers: dict[int, Finding], deadline: float | None) -> bool:
    """Every login answered; or, past the deadline, the shared ones did and a mailbox is in
    (else waiting on tells whether no mailbox works at all, which refuses the start)."""
    if len(answers) == len(logins):
        return True
    if deadline is None or time.monotonic() < deadline:
        return False
    shared_done = all(i in answers for i, login in enumerate(logins) if login.worker is None)
    mailbox_in = any(f.error is None and (f.worker or "").startswith("mailbox ") for f in answers.values())
    return shared_done and mailbox_in


def config_findings(config: Config, language: str = "en") -> list[Finding]:
    """Settings that run but would not do what the sysadmin wants."""
    t = labels(language)
    found = []
    sla = config.sla
    if sla.enabled and not sla.reply_sources and not sla.allow_no_reply_source:
        found.append(Finding(t["clock"], t["no_reply_source"]))
    if config.legacy_subject_format is not None:
        found.append(Finding(t["subject"], None, [t["legacy_subject"].format(
            path=config.path, old=config.legacy_subject_format, new=config.labels.text)]))
    return found


def check_summary(config: Config, language: str = "en") -> str:
    """The first line of `check`: the configuration loaded, and what it holds."""
    return labels(language)["summary"].format(
        path=config.path, mailboxes=len(config.mailboxes), reps=len(config.reps), teams=len(config.teams),
        rules=len(config.rules.rules), files=len(config.rules.files))


def format_finding(finding: Finding, language: str = "en") -> list[str]:
    t = labels(language)
    verdict = t["ok"] if finding.error is None else f"{t['failed']} — {finding.error}"
    colon = "：" if language == "zh" else ": "
    return [f"{finding.label}{colon}{verdict}"] + [f"  {t['note']}{colon}{note}" for note in finding.notes]


def check_servers(config: Config, language: str = "en") -> bool:
    ok = True
    for finding in config_findings(config, language) + server_problems(config, language):
        print("\n".join(format_finding(finding, language)))
        ok &= finding.error is None
    return ok


def _check_database(config: Config, language: str) -> Finding:
    from mailrouter.store import database_label
    from mailrouter.migrations import database_note

    error, note = database_note(config.database, language)  # driver errors stay as the driver gave them
    return Finding(labels(language)["database"].format(url=database_label(config.database)), error, [note] if note else [])


def _check_imap(settings: Callable[[], ImapSettings], t: dict[str, str],
                notes: bool = False) -> tuple[str | None, list[str], str]:
    """(error or None, capability notes, kind of failure)."""
    try:
        conn = Mailbox.connect(settings())
    except CredentialError as exc:  # a password command failing: it may work in a minute
        return str(exc), [], UNREACHABLE
    except ImapError as exc:
        return f"{exc}{t['check_login']}", [], outage_kind(exc)
    try:
        conn.select_inbox()
        return None, _capability_notes(conn, t) if notes else [], UNREACHABLE
    except ImapError as exc:
        return str(exc), [], outage_kind(exc)
    finally:
        conn.logout()


def _capability_notes(conn: Mailbox, t: dict[str, str]) -> list[str]:
    missing = [c for c in ("IDLE", "MOVE", "UIDPLUS") if c not in conn.capabilities]
    notes = [t["lacks"].format(caps=", ".join(missing))] if missing else []
    if not conn.custom_keywords:
        notes.append(t["no_keywords"])
    return notes


def template_problem(config: Config) -> str | None:
    """Compile every template now: a syntax error would otherwise show on the first forward
    or notice that needs that file, in the middle of the night."""
    env = make_environment(config.template_dirs)
    broken = []
    for name in env.list_templates(extensions=["j2"]):
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            broken.append(f"{exc.filename or name}, line {exc.lineno}: {exc.message}")
    return "; ".join(broken) or None


def _check_spool(config: Config, t: dict[str, str] = LABELS["en"]) -> str | None:
    """Messages over daemon.large_message_bytes are written here: find out now, not on the first one."""
    probe = config.spool_dir / ".write-test"
    try:
        config.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
        return None
    except OSError as exc:
        return t["spool_error"].format(reason=exc.strerror)


def _check_smtp(config: Config) -> str | None:
    async def attempt() -> None:
        client = smtp_client(config.smtp.server)
        await client.connect()
        await client.noop()
        await client.quit()

    try:
        asyncio.run(attempt())
        return None
    except (aiosmtplib.SMTPException, OSError, CredentialError) as exc:
        return f"{type(exc).__name__}: {exc}"
