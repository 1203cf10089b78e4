"""`mailrouter check`: after the config validates, try every login so problems show at install time."""
from __future__ import annotations

import asyncio

import aiosmtplib

from .config import Config
from .imap import ImapError, Mailbox
from .outbox import smtp_client
from .worker import imap_settings


def check_servers(config: Config) -> bool:
    ok = True
    for mailbox in config.mailboxes:
        ok &= _report(f"IMAP {mailbox.name} ({mailbox.server.user}@{mailbox.server.host}:"
                      f"{mailbox.server.port})", _check_imap(mailbox))
    ok &= _report(f"SMTP {config.smtp.server.host}:{config.smtp.server.port}", _check_smtp(config))
    return ok


def _report(label: str, error: str | None) -> bool:
    print(f"{label}: {'OK' if error is None else 'FAILED — ' + error}")
    return error is None


def _check_imap(mailbox) -> str | None:
    try:
        conn = Mailbox.connect(imap_settings(mailbox))
    except ImapError as exc:
        return f"{exc} (check host, port, tls and the password source)"
    try:
        conn.select_inbox()
        missing = [c for c in ("IDLE", "MOVE", "UIDPLUS") if c not in conn.capabilities]
        if missing:
            print(f"  note: server lacks {', '.join(missing)}; mailrouter works around it")
        return None
    except ImapError as exc:
        return str(exc)
    finally:
        conn.logout()


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
