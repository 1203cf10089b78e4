"""The `[sla]`, `[teams.X.hours]`, `[[reply_source]]` and rep availability parts of config.toml."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailrouter.sla.hours import BusinessCalendar
from mailrouter.sla.ladder import COLD_LADDER, DEFAULT_LADDER, Ladder, ladder_from_config
from mailrouter.sla.durations import calendar_from_config
from mailrouter.sla.webhook import WebhookTarget, webhook_from_config

if TYPE_CHECKING:
    from mailrouter.config.load import ServerConfig, _Reader

SOURCE_KINDS = ("rep_mailbox", "journal", "shared_sent")


@dataclass(frozen=True)
class ReplySource:
    """Where replies to buyers can be seen: a rep's mailbox, a journal (BCC) mailbox, or a
    shared mailbox's own Sent folder."""

    name: str
    kind: str
    server: ServerConfig | None  # None for shared_sent: the shared mailbox's own login
    rep: str | None = None  # rep_mailbox: whose mailbox
    mailbox: str | None = None  # shared_sent: which [[mailbox]]
    folder: str | None = None  # override: otherwise \Sent, then localised names
    poll_interval: float = 30.0


@dataclass(frozen=True)
class SlaConfig:
    enabled: bool = True
    sweep_interval: float = 30.0  # seconds between looks at the open assignments
    default_ladder: str = "default"
    ladders: dict[str, Ladder] = field(default_factory=lambda: {"default": DEFAULT_LADDER,
                                                                "cold": COLD_LADDER})
    default_calendar: BusinessCalendar | None = None
    calendars: dict[str, BusinessCalendar] = field(default_factory=dict)  # team -> calendar
    webhooks: tuple[WebhookTarget, ...] = ()
    reply_sources: tuple[ReplySource, ...] = ()
    max_open: dict[str, int] = field(default_factory=dict)  # rep -> cap on unreplied inquiries
    allow_no_reply_source: bool = False  # the sysadmin knows no reply will ever stop the clock

    def calendar_for(self, team: str | None) -> BusinessCalendar:
        assert self.default_calendar is not None
        return self.calendars.get(team or "", self.default_calendar)

    def ladder(self, name: str | None) -> Ladder:
        return self.ladders.get(name or self.default_ladder, self.ladders[self.default_ladder])


def read_sla(r: _Reader, data: dict, team_hours: dict[str, dict], tz_name: str,
             environ: dict[str, str], server_reader: Any, reps: set[str],
             mailboxes: set[str]) -> SlaConfig:
    d = r.table(data, "sla")
    p = "sla."
    r.unknown_keys(d, {"enabled", "sweep_interval", "ladder", "ladders", "hours", "webhook",
                       "allow_no_reply_source"}, p)
    ladders = {"default": DEFAULT_LADDER, "cold": COLD_LADDER}
    for name, raw in r.table(d, "ladders", p).items():
        ladder, problems = ladder_from_config(raw if isinstance(raw, dict) else {}, r.file,
                                              f"sla.ladders.{name}.")
        _add(r, problems)
        ladders[name] = ladder
    default = r.get(d, "ladder", str, "default", p)
    if default not in ladders:
        r.problem(p + "ladder", f"unknown ladder {default!r} (known: {', '.join(sorted(ladders))})")
        default = "default"
    calendar, problems = calendar_from_config(r.table(d, "hours", p), r.file, "sla.hours.", tz_name)
    _add(r, problems)
    calendars = {}
    for team, raw in team_hours.items():
        cal, problems = calendar_from_config(raw, r.file, f"teams.{team}.hours.", tz_name)
        _add(r, problems)
        calendars[team] = cal
    return SlaConfig(
        enabled=r.get(d, "enabled", bool, True, p),
        allow_no_reply_source=r.get(d, "allow_no_reply_source", bool, False, p),
        sweep_interval=r.get(d, "sweep_interval", float, 30.0, p),
        default_ladder=default, ladders=ladders, default_calendar=calendar, calendars=calendars,
        webhooks=_webhooks(r, d.get("webhook", []), environ),
        reply_sources=_reply_sources(r, data.get("reply_source", []), server_reader, reps, mailboxes),
    )


def _add(r: _Reader, problems: list) -> None:
    for problem in problems:
        r.problem(problem.key, problem.message)


def _webhooks(r: _Reader, items: Any, environ: dict[str, str]) -> tuple[WebhookTarget, ...]:
    if not isinstance(items, list):
        r.problem("sla.webhook", "must be an array of tables: [[sla.webhook]]")
        return ()
    targets = []
    for i, raw in enumerate(items):
        target, problems = webhook_from_config(raw, r.file, f"sla.webhook[{i}].", environ)
        _add(r, problems)
        if target:
            targets.append(target)
    return tuple(targets)


def _reply_sources(r: _Reader, items: Any, server_reader: Any, reps: set[str],
                   mailboxes: set[str]) -> tuple[ReplySource, ...]:
    if not isinstance(items, list):
        r.problem("reply_source", "must be an array of tables: [[reply_source]]")
        return ()
    sources = []
    for i, d in enumerate(items):
        p = f"reply_source[{i}]."
        kind = r.get(d, "kind", str, "", p, required=True)
        if kind not in SOURCE_KINDS:
            r.problem(p + "kind", f"must be one of {', '.join(SOURCE_KINDS)}, not {kind!r}")
            continue
        own = {"name", "kind", "rep", "mailbox", "folder", "poll_interval"}
        rep = r.get(d, "rep", str, "", p) or None
        mailbox = r.get(d, "mailbox", str, "", p) or None
        if kind == "rep_mailbox" and rep not in reps:
            r.problem(p + "rep", f"a rep_mailbox source names one of the reps, not {rep!r}")
        if kind == "shared_sent" and mailbox not in mailboxes:
            r.problem(p + "mailbox", f"a shared_sent source names a [[mailbox]], not {mailbox!r}")
        server = None
        if kind == "shared_sent":
            r.unknown_keys(d, own, p)
        else:
            server = server_reader(d, p, own)
        sources.append(ReplySource(
            name=r.get(d, "name", str, f"{kind}:{rep or mailbox or i}", p), kind=kind,
            server=server, rep=rep, mailbox=mailbox, folder=r.get(d, "folder", str, "", p) or None,
            poll_interval=r.get(d, "poll_interval", float, 30.0, p)))
    return tuple(sources)
