"""`mailrouter dry-run`: replay past mail through the current rules, changing nothing anywhere.

A backtest before a rule change goes live: each message in a folder is examined with the
rules as they are on disk now and compared with the decision the database recorded for the
same message (by content key). The server is only ever EXAMINEd (read-only SELECT) and read
with BODY.PEEK, so no flag changes, nothing moves, and the database is only read.

The comparison is by outcome, rule and target, against the rules' own first decision: what
happened afterwards (the ladder reassigning or pooling it, a manager moving it into Assign/) is
shown beside it but is no rule change. A message the manager assigned by hand from the start
has no rule decision to compare with, so it is listed as manual. For a team target the member
is not compared: round robin depends on the team's history, which a replay does not reproduce.
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from mailrouter.config.schema import Config, MailboxConfig
from mailrouter.decide.assign import TeamState
from mailrouter.intake.imap import ImapError, Mailbox
from mailrouter.model import Outcome
from mailrouter.act.original import InMemory, Original, Spooled
from mailrouter.decide.examine import examine
from mailrouter.intake.spool import scan
from mailrouter.store import AssignmentRow, MessageRow, open_database
from mailrouter.reports.render import width
from mailrouter.runtime.mailbox import imap_settings

FETCH_BATCH = 100  # bounded memory on a mailbox of years


@dataclass(frozen=True)
class Recorded:
    """The decision the daemon stored for the same message."""

    outcome: str
    rule: str | None
    rep: str | None
    team: str | None
    how: str = "rule"  # "registry": a known customer went to its owner; rules were not asked
    # "manual": assigned by hand from the start; nothing to compare
    since: str = ""  # what happened after the first decision, e.g. "reassigned to li"


@dataclass(frozen=True)
class DryRunResult:
    folder: str
    uid: int
    message_id: str
    sender: str
    subject: str
    outcome: str
    rule: str | None
    rep: str | None
    team: str | None
    reason: str
    old: Recorded | None  # None: never handled by the daemon (or another database)

    @property
    def by_registry(self) -> bool:
        """Routed to the customer's owner before any rule: a rule change cannot move it."""
        return self.old is not None and self.old.how == "registry"

    @property
    def manual(self) -> bool:
        """Assigned by a manager with no rule decision before it: nothing to compare."""
        return self.old is not None and self.old.how == "manual"

    @property
    def changed(self) -> bool:
        return self.old is not None and not self.by_registry and not self.manual and target(self.old.outcome, self.old.rule, self.old.rep, self.old.team) \
            != target(self.outcome, self.rule, self.rep, self.team)


def target(outcome: str, rule: str | None, rep: str | None, team: str | None) -> tuple[str, str | None, str | None]:
    return outcome, rule, f"team {team}" if team else rep


def describe(outcome: str, rule: str | None, rep: str | None, team: str | None) -> str:
    who = f"team {team}" if team else rep
    return outcome + (f" {who}" if who else "") + (f" ({rule})" if rule else "")


# -- reading the server, read-only

def filed_folders(config: Config, mailbox: MailboxConfig) -> list[str]:
    """Where past mail is: the inbox and every folder the daemon files into."""
    f = config.folders
    routed = [f.routed.format(rep=rep.folder) for rep in config.reps.values()]
    return [mailbox.inbox, *routed, f.unrecognized, f.ignored, f.duplicate, f.quarantine, f.undeliverable]


# -- replay

def dry_run(config: Config, mailbox_name: str, folder: str | Sequence[str] | None = None,
            since: date | None = None, progress: bool = False,
            sessions: sessionmaker[Session] | None = None) -> Iterator[DryRunResult]:
    """Examine each message of the folder(s) (default: inbox and filing folders) with today's
    rules; yields as it goes, so a long run prints while it works."""
    mailbox = find_mailbox(config, mailbox_name)
    sessions = open_database(config.database) if sessions is None else sessions
    with Mailbox.connect(imap_settings(mailbox)) as conn:
        present = {name for _flags, name in conn.folders_with_flags()}
        wanted = [folder] if isinstance(folder, str) else list(folder or filed_folders(config, mailbox))
        if isinstance(folder, str) and folder not in present:
            raise ImapError(f"{mailbox_name}: no folder {folder!r} on the server")
        for name in dict.fromkeys(wanted):
            if name in present:
                yield from _replay_folder(conn, config, sessions, name, since, progress)


def find_mailbox(config: Config, name: str) -> MailboxConfig:
    for mailbox in config.mailboxes:
        if mailbox.name == name:
            return mailbox
    known = ", ".join(m.name for m in config.mailboxes)
    raise ValueError(f"no mailbox named {name!r} in {config.path} (known: {known})")


def _replay_folder(conn: Mailbox, config: Config, sessions: sessionmaker[Session], name: str,
                   since: date | None, progress: bool) -> Iterator[DryRunResult]:
    conn.select_folder(name, readonly=True)  # EXAMINE: no flag changes, no expunge on close
    uids = conn.uids_since(since)
    with tqdm(total=len(uids), desc=name, unit="msg", file=sys.stderr, disable=not progress,
              leave=False) as bar:
        sizes = conn.sizes(uids) if uids else {}
        large = [u for u in uids if sizes.get(u, 0) > config.large_message_bytes]
        for uid, raw in conn.fetch([u for u in uids if u not in set(large)], batch=FETCH_BATCH):
            yield replay_one(InMemory(raw), config, sessions, name, uid)
            bar.update(1)
        for uid in large:  # read in chunks and scanned on the way: never whole in memory, no file
            yield replay_one(Spooled(scan(conn.fetch_chunks(uid))), config, sessions, name, uid)
            bar.update(1)


def replay_one(original: Original, config: Config, sessions: sessionmaker[Session], folder: str,
               uid: int) -> DryRunResult:
    """The pure decision for `original` next to the one stored for the same content."""
    examined = examine(original.parse(config.parse), config, TeamState())
    d, q = examined.decision, examined.inquiry
    return DryRunResult(
        folder=folder, uid=uid, message_id=q.message_id if q else "", sender=q.sender if q else "",
        subject=q.subject if q else "", outcome=d.outcome.value, rule=d.rule, rep=d.rep, team=d.team,
        reason=d.reason, old=recorded_decision(sessions, original.content_key))


def recorded_decision(sessions: sessionmaker[Session], key: str) -> Recorded | None:
    """The first decision for this content; a copy filed as a duplicate defers to its original."""
    with sessions() as session:
        rows = session.scalars(select(MessageRow).where(MessageRow.content_key == key)
                               .order_by(MessageRow.id)).all()
        rows = sorted(rows, key=lambda r: r.outcome == Outcome.DUPLICATE.value)
        if not rows:
            return None
        row = rows[0]
        held = session.scalars(select(AssignmentRow).where(AssignmentRow.message == row.id)
                               .order_by(AssignmentRow.id)).all()
        history = [(a.how, a.rep, a.end_reason) for a in held]
    # the message row follows its current owner; the first assignment is the rules' choice
    first_rep = history[0][1] if history else row.rep
    return Recorded(row.outcome, row.rule, first_rep, row.team, history[0][0] if history else "rule",
                    since_first(history))


def since_first(history: Sequence[tuple[str, str, str | None]]) -> str:
    """What the ladder and managers did after the first assignment, from (how, rep, end_reason)
    rows in order; "" when nothing did."""
    events = []
    for how, rep, _end in history[1:]:
        events.append(f"assigned by hand to {rep}" if how == "manual" else f"reassigned to {rep}")
    if history and history[-1][2] in ("pooled", "quarantined"):  # quarantined: set aside by the ladder
        events.append(history[-1][2])
    return ", ".join(events)


# -- report

@dataclass
class DryRunTotals:
    examined: int = 0
    changed: int = 0
    unseen: int = 0
    by_registry: int = 0
    manual: int = 0  # assigned by hand from the start
    ladder: int = 0  # reassigned or pooled since (compared with the first decision all the same)
    changes: Counter[str] = field(default_factory=Counter)  # "zhang -> li" -> how many

    def summary(self, language: str = "en") -> str:
        t = TEXT[_lang(language)]
        head = t["head"].format(changed=self.changed, examined=self.examined)
        parts = [f"{n} {what}" for what, n in self.changes.most_common()]
        text = head + (t["colon"] + "; ".join(parts) if parts else "")
        counts = (("unseen", self.unseen), ("by_registry", self.by_registry), ("manual", self.manual),
                  ("ladder", self.ladder))
        notes = [t[key].format(n=n) for key, n in counts if n]
        return text + (t["notes"].format("; ".join(notes)) if notes else "")


TEXT = {
    "en": {"head": "{changed} of {examined} would change", "colon": ": ", "notes": " ({})",
           "unseen": "{n} not in the database",
           "by_registry": "{n} routed by the customer registry, which rules do not change",
           "manual": "{n} assigned by hand, not compared",
           "ladder": "{n} moved on since by the ladder or a manager, compared by their first decision",
           "same": "same", "CHANGED": "CHANGED", "new": "new", "registry": "registry", "manual_mark": "manual",
           "known": "known customer; rules not asked", "by_hand": "assigned by hand to {rep} (rules now: {new})",
           "since": "since", "from": "from"},
    "zh": {"head": "{examined} 封中 {changed} 封会改变", "colon": "：", "notes": "（{}）",
           "unseen": "{n} 封不在数据库中",
           "by_registry": "{n} 封由客户登记分配，规则改变不影响",
           "manual": "{n} 封为手动分配，不比较",
           "ladder": "{n} 封之后被升级规则或主管转派，按最初的决定比较",
           "same": "不变", "CHANGED": "改变", "new": "新邮件", "registry": "登记", "manual_mark": "手动",
           "known": "已登记客户；未用规则", "by_hand": "手动分配给 {rep}（现在的规则：{new}）",
           "since": "之后", "from": "发件人"},
}


def _lang(language: str) -> str:
    return "zh" if language == "zh" else "en"


def format_result(r: DryRunResult, language: str = "en") -> str:
    t = TEXT[_lang(language)]
    new = describe(r.outcome, r.rule, r.rep, r.team)
    if r.old is None:
        mark, what = t["new"], new
    elif r.manual:
        mark, what = t["manual_mark"], t["by_hand"].format(rep=r.old.rep, new=new)
    elif r.by_registry:
        mark, what = t["registry"], f"{describe(r.old.outcome, r.old.rule, r.old.rep, r.old.team)} ({t['known']})"
    elif r.changed:
        mark, what = t["CHANGED"], f"{describe(r.old.outcome, r.old.rule, r.old.rep, r.old.team)} -> {new}"
    else:
        mark, what = t["same"], new
    if r.old is not None and r.old.since:
        what += f"; {t['since']}: {r.old.since}"
    mark += " " * max(1, 9 - width(mark))
    return f"{mark}{r.folder}#{r.uid} {r.message_id or '(no Message-ID)'} {t['from']} {r.sender or '?'}: {what}"


def format_dry_run(results: Iterable[DryRunResult], out: TextIO, only_changes: bool = False,
                   language: str = "en") -> DryRunTotals:
    """Print one line per message as results arrive, then the summary; return the totals."""
    totals = DryRunTotals()
    for r in results:
        totals.examined += 1
        totals.unseen += r.old is None
        totals.by_registry += r.by_registry
        totals.manual += r.manual
        totals.ladder += bool(r.old and r.old.since) and not r.manual
        if r.changed:
            totals.changed += 1
            assert r.old is not None
            totals.changes[f"{_short(r.old.outcome, r.old.rep, r.old.team)} -> "
                           f"{_short(r.outcome, r.rep, r.team)}"] += 1
        if r.changed or not only_changes:
            print(format_result(r, language), file=out)
    print(totals.summary(language), file=out)
    return totals


def _short(outcome: str, rep: str | None, team: str | None) -> str:
    return f"team {team}" if team else rep or outcome


_SINCE = re.compile(r"^(\d+)([dwmy])$")


def parse_since(text: str, today: date) -> date:
    """'30d', '2w', '6m', '1y' before `today`, or an ISO date; for --since."""
    match = _SINCE.match(text.strip())
    if match:
        n, unit = int(match.group(1)), match.group(2)
        return today - timedelta(days=n * {"d": 1, "w": 7, "m": 30, "y": 365}[unit])
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since takes 30d, 2w, 6m, 1y or a date like 2026-01-31, not {text!r}") from None
