"""`mailrouter dry-run --first-start`: what starting the daemon would do to a mailbox's history.

A sysadmin about to point the daemon at a mailbox of years wants to see, before anything is
forwarded, how much would be adopted (left alone) and which messages the backfill would route,
to whom. The decisions are the daemon's own: intake/firststart.py splits the folder by flags and
INTERNALDATE, and each message to be routed is examined with today's rules as `dry-run` does.
The server is only EXAMINEd and read with BODY.PEEK; the database is only read.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TextIO

from sqlalchemy.orm import Session, sessionmaker

from mailrouter.act.original import InMemory
from mailrouter.commands.dryrun import DryRunResult, describe, find_mailbox, replay_one
from mailrouter.config.schema import Config, MailboxConfig
from mailrouter.intake.adoption import watched
from mailrouter.intake.firststart import Backfill, plan_first_start
from mailrouter.intake.imap import Mailbox
from mailrouter.runtime.mailbox import assign_folders, imap_settings
from mailrouter.store import open_database


@dataclass(frozen=True)
class FolderPreview:
    folder: str
    known_since: datetime | None   # set: already watched, a start is not a first start here
    adopt: int = 0
    route: tuple[DryRunResult, ...] = ()


def preview_first_start(config: Config, mailbox_name: str,
                        sessions: sessionmaker[Session] | None = None,
                        now: datetime | None = None) -> Iterator[FolderPreview]:
    """One preview per folder the daemon watches in this mailbox (INBOX first, then Assign/)."""
    mailbox = find_mailbox(config, mailbox_name)
    sessions = open_database(config.database) if sessions is None else sessions
    now = now or datetime.now(timezone.utc)
    with Mailbox.connect(imap_settings(mailbox)) as conn:
        present = {name for _flags, name in conn.folders_with_flags()}
        for folder in [mailbox.inbox, *assign_folders(config)]:  # what the daemon watches
            if folder != mailbox.inbox and folder not in present:
                continue  # an Assign/ folder not created yet: nothing to adopt there
            known = watched(sessions, mailbox.name, folder)
            if known is not None:
                yield FolderPreview(folder, known.first_seen_at)
                continue
            conn.select_folder(folder, readonly=True)  # EXAMINE: flags stay as the reps left them
            plan = plan_first_start(conn.flags_and_dates(conn.uids_since(None)), mailbox.backfill, now)
            # Assign/ folders are adopted whole by the daemon too; what it routes there is only
            # what a manager moves in later, so the preview examines the INBOX backfill only.
            routed = [replay_one(InMemory(raw), config, sessions, folder, uid)
                      for uid, raw in conn.fetch(list(plan.route))] if folder == mailbox.inbox else []
            yield FolderPreview(folder, None, len(plan.adopt), tuple(routed))


# The preview per language (issue 15 item 6), like dry-run's TEXT; decisions keep their ids.
LABELS = {
    "en": {"watched": "{mailbox} {folder}: watched since {since} UTC; a start routes only new mail",
           "would": "{mailbox} {folder}: first start would adopt {adopt} (left where they are, never forwarded) "
                    "and route {route} (backfill {backfill})",
           "route": "  route    {where} {message_id} from {sender}: {what}",
           "last": "the last {text}", "since": "since {date}", "none": "none"},
    "zh": {"watched": "{mailbox} {folder}：自 {since} UTC 起已在监视；启动后只分配新邮件",
           "would": "{mailbox} {folder}：首次启动将接管 {adopt} 封（原地不动，不转发），分配 {route} 封"
                    "（回补 {backfill}）",
           "route": "  分配     {where} {message_id} 发件人 {sender}：{what}",
           "last": "最近 {text}", "since": "自 {date} 起", "none": "无"},
}


def backfill_text(backfill: Backfill, t: dict[str, str]) -> str:
    """Backfill.describe() in the preview's language."""
    if backfill.window is not None:
        return t["last"].format(text=backfill.text)
    return t["since"].format(date=backfill.since.isoformat()) if backfill.since is not None else t["none"]


def format_preview(mailbox: MailboxConfig, previews: Iterator[FolderPreview], out: TextIO,
                   language: str = "en") -> tuple[int, int]:
    """Print what a start would do, folder by folder; return (adopted, routed) totals."""
    t = LABELS["zh" if language == "zh" else "en"]
    adopted = routed = 0
    for p in previews:
        if p.known_since is not None:
            print(t["watched"].format(mailbox=mailbox.name, folder=p.folder,
                                      since=f"{p.known_since:%Y-%m-%d %H:%M}"), file=out)
            continue
        adopted, routed = adopted + p.adopt, routed + len(p.route)
        print(t["would"].format(mailbox=mailbox.name, folder=p.folder, adopt=p.adopt, route=len(p.route),
                                backfill=backfill_text(mailbox.backfill, t)), file=out)
        for r in p.route:
            print(t["route"].format(where=f"{r.folder}#{r.uid}", message_id=r.message_id or "(no Message-ID)",
                                    sender=r.sender or "?", what=describe(r.outcome, r.rule, r.rep, r.team)),
                  file=out)
    return adopted, routed
