"""Start-up checks: log in to every server, so a wrong password shows at install time (`check`)
and a daemon that cannot work fails its start instead of looking active (`run`)."""
from __future__ import annotations

import asyncio

import aiosmtplib

from mailrouter.config.load import Config, MailboxConfig
from mailrouter.intake.imap import ImapError, Mailbox
from mailrouter.act.outbox import smtp_client
from mailrouter.runtime.mailbox import imap_settings


def server_problems(config: Config) -> list[tuple[str, str | None, list[str]]]:
    """(what, error or None, notes) for every IMAP mailbox and the SMTP server."""
    results = []
    for mailbox in config.mailboxes:
        s = mailbox.server
        label = f"IMAP {mailbox.name} ({s.user} at {s.host}:{s.port})"
        results.append((label, *_check_imap(mailbox)))
    results.append((f"SMTP {config.smtp.server.host}:{config.smtp.server.port}", _check_smtp(config), []))
    results.append((f"spool folder {config.spool_dir}", _check_spool(config), []))
    return results


def check_servers(config: Config) -> bool:
    ok = True
    for label, error, notes in server_problems(config):
        print(f"{label}: {'OK' if error is None else 'FAILED — ' + error}")
        for note in notes:
            print(f"  note: {note}")
        ok &= error is None
    return ok


def _check_imap(mailbox: MailboxConfig) -> tuple[str | None, list[str]]:
    try:
        conn = Mailbox.connect(imap_settings(mailbox))
    except ImapError as exc:
        return f"{exc} (check host, port, tls and the password source)", []
    try:
        conn.select_inbox()
        missing = [c for c in ("IDLE", "MOVE", "UIDPLUS") if c not in conn.capabilities]
        notes = [f"server lacks {', '.join(missing)}; mailrouter works around it"] if missing else []
        if not conn.custom_keywords:
            notes.append("server does not keep custom keywords; folders and the database carry the state")
        return None, notes
    except ImapError as exc:
        return str(exc), []
    finally:
        conn.logout()


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
    except (aiosmtplib.SMTPException, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
