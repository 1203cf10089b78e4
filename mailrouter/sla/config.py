"""The `[sla]`, `[teams.X.hours]`, `[[reply_source]]` and rep availability parts of config.toml."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mailrouter.config.reader import Problem, Reader
from mailrouter.config.schema import ReplySource, ServerConfig, SlaConfig
from mailrouter.sla.durations import calendar_from_config
from mailrouter.sla.ladder import COLD_LADDER, DEFAULT_LADDER, ladder_from_config
from mailrouter.sla.webhook import WebhookTarget, webhook_from_config

SOURCE_KINDS = ("rep_mailbox", "journal", "shared_sent")
ServerReader = Callable[[dict[str, Any], str, set[str]], ServerConfig]

__all__ = ["SOURCE_KINDS", "ReplySource", "SlaConfig", "read_sla"]


def read_sla(r: Reader, data: dict[str, Any], team_hours: dict[str, dict[str, Any]], tz_name: str,
             environ: dict[str, str], server_reader: ServerReader, reps: set[str],
             mailboxes: set[str], resolve_secrets: bool = True) -> SlaConfig:
    """`[sla]`, `[teams.X.hours]` and `[[reply_source]]`. Without resolve_secrets (an admin
    command that sends nothing) webhook URLs, which are secrets, are not read at all."""
    d = r.table(data, "sla")
    p = "sla."
    r.unknown_keys(d, {"enabled", "sweep_interval", "ladder", "ladders", "hours", "webhook",
                       "allow_no_reply_source"}, p)
    ladders = {"default": DEFAULT_LADDER, "cold": COLD_LADDER}
    for name, raw in r.table(d, "ladders", p).items():
        if not isinstance(raw, dict):
            r.problem(f"{p}ladders.{name}", f"must be a table with steps = [...], not {raw!r}")
            continue
        ladder, problems = ladder_from_config(raw, r.file, f"sla.ladders.{name}.")
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
        sweep_interval=r.number(d, "sweep_interval", float, 30.0, p, above=0),
        default_ladder=default, ladders=ladders, default_calendar=calendar, calendars=calendars,
        webhooks=_webhooks(r, d.get("webhook", []), environ) if resolve_secrets else (),
        reply_sources=_reply_sources(r, data.get("reply_source", []), server_reader, reps, mailboxes),
    )


def _add(r: Reader, problems: list[Problem]) -> None:
    for problem in problems:
        r.problem(problem.key, problem.message)


def _webhooks(r: Reader, items: Any, environ: dict[str, str]) -> tuple[WebhookTarget, ...]:
    if not isinstance(items, list):
        r.problem("sla.webhook", "must be an array of tables: [[sla.webhook]]")
        return ()
    targets = []
    for i, raw in enumerate(items):
        if not isinstance(raw, dict):
            r.problem(f"sla.webhook[{i}]", f"must be a table ([[sla.webhook]]), not {raw!r}")
            continue
        target, problems = webhook_from_config(raw, r.file, f"sla.webhook[{i}].", environ)
        _add(r, problems)
        if target:
            targets.append(target)
    return tuple(targets)


def _reply_sources(r: Reader, items: Any, server_reader: ServerReader, reps: set[str],
                   mailboxes: set[str]) -> tuple[ReplySource, ...]:
    if not isinstance(items, list):
        r.problem("reply_source", "must be an array of tables: [[reply_source]]")
        return ()
    sources = []
    for i, d in enumerate(items):
        p = f"reply_source[{i}]."
        if not isinstance(d, dict):
            r.problem(p[:-1], f"must be a table ([[reply_source]]), not {d!r}")
            continue
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
            poll_interval=r.number(d, "poll_interval", float, 30.0, p, above=0)))
    return tuple(sources)
