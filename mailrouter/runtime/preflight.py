"""Start-up checks: log in to every server, so a wrong password shows at install time (`check`)
and a daemon that cannot work fails its start instead of looking active (`run`).

`check` adds what only a person can fix but the daemon could run with: SLA without any reply
source (the first-reply clock would never stop).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import aiosmtplib
import jinja2

from mailrouter.act.outbox import smtp_client
from mailrouter.act.templating import make_environment
from mailrouter.config.credentials import CredentialError
from mailrouter.config.schema import Config
from mailrouter.intake.imap import ImapError, ImapSettings, Mailbox
from mailrouter.runtime.mailbox import imap_settings
from mailrouter.sla.config import ReplySource
from mailrouter.sla.replies import reply_settings


@dataclass(frozen=True)
class Finding:
    """One line of `check`: what was tried, the error (None: OK), and notes worth knowing."""

    label: str
    error: str | None
    notes: list[str] = field(default_factory=list)


def server_problems(config: Config) -> list[Finding]:
    """Every login (mailboxes, SMTP, each reply source with a login of its own), the spool
    folder and the templates: what the daemon needs before it starts."""
    results = []
    for mailbox in config.mailboxes:
        s = mailbox.server
        label = f"IMAP {mailbox.name} ({s.user} at {s.host}:{s.port})"
        results.append(Finding(label, *_check_imap(lambda: imap_settings(mailbox), notes=True)))
    results.append(Finding(f"SMTP {config.smtp.server.host}:{config.smtp.server.port}", _check_smtp(config)))
    results += [_check_reply_source(source, config) for source in config.sla.reply_sources
                if source.server is not None]  # shared_sent uses its mailbox's login, tried above
    results.append(_check_database(config))
    results.append(Finding(f"spool folder {config.spool_dir}", _check_spool(config)))
    results.append(Finding(f"templates in {', '.join(map(str, config.template_dirs))}", template_problem(config)))
    return results


def config_findings(config: Config) -> list[Finding]:
    """Settings that run but would not do what the sysadmin wants."""
    found = []
    sla = config.sla
    if sla.enabled and not sla.reply_sources and not sla.allow_no_reply_source:
        found.append(Finding("first-reply clock", "sla.enabled = true but there is no [[reply_source]], so no "
                             "reply is ever seen and every inquiry is reminded, escalated and reassigned; add a "
                             "[[reply_source]], set sla.enabled = false, or set "
                             "sla.allow_no_reply_source = true if that is what you want"))
    if config.legacy_subject_format is not None:
        found.append(Finding("forward subject", None, [
            f"{config.path}: forward.subject_format = {config.legacy_subject_format!r} is read as "
            f"forward.labels = {config.labels.text!r}: internal labels now show to the rep in the forward's "
            "context line and X-Mailrouter-Labels header, not in the subject a buyer's reply carries back; "
            "rename the key to labels (and set customer_tag for a tag the buyer may see)"]))
    return found


def check_servers(config: Config) -> bool:
    ok = True
    for finding in config_findings(config) + server_problems(config):
        print(f"{finding.label}: {'OK' if finding.error is None else 'FAILED — ' + finding.error}")
        for note in finding.notes:
            print(f"  note: {note}")
        ok &= finding.error is None
    return ok


def _check_database(config: Config) -> Finding:
    from mailrouter.commands.db import shown
    from mailrouter.migrations import database_note

    error, note = database_note(config.database)
    return Finding(f"database {shown(config.database)}", error, [note] if note else [])


def _check_imap(settings: Callable[[], ImapSettings], notes: bool = False) -> tuple[str | None, list[str]]:
    try:
        conn = Mailbox.connect(settings())
    except CredentialError as exc:
        return str(exc), []
    except ImapError as exc:
        return f"{exc} (check host, port, tls and the password source)", []
    try:
        conn.select_inbox()
        return None, _capability_notes(conn) if notes else []
    except ImapError as exc:
        return str(exc), []
    finally:
        conn.logout()


def _capability_notes(conn: Mailbox) -> list[str]:
    missing = [c for c in ("IDLE", "MOVE", "UIDPLUS") if c not in conn.capabilities]
    notes = [f"server lacks {', '.join(missing)}; mailrouter works around it"] if missing else []
    if not conn.custom_keywords:
        notes.append("server does not keep custom keywords; folders and the database carry the state")
    return notes


def _check_reply_source(source: ReplySource, config: Config) -> Finding:
    s = source.server
    assert s is not None
    error, _ = _check_imap(lambda: reply_settings(source, config))
    return Finding(f"reply source {source.name} ({s.user} at {s.host}:{s.port})", error)


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


def _check_spool(config: Config) -> str | None:
    """Messages over daemon.large_message_bytes are written here: find out now, not on the first one."""
    probe = config.spool_dir / ".write-test"
    try:
        config.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
        return None
    except OSError as exc:
        return f"cannot write there: {exc.strerror} (set daemon.spool_dir to a folder the daemon may write)"


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
