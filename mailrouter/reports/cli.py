"""`mailrouter report` and `mailrouter overdue`.

Dates on the command line are local to the config's time zone: `--since 2026-11-01` is that
day's midnight there, `--since 7d` is seven days before now, `--until` is exclusive.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path

from mailrouter.config.schema import Config
from mailrouter.store import open_database
from mailrouter.reports.figures import Period, Scope, compute_report
from mailrouter.reports.overdue import overdue_now, render_overdue
from mailrouter.reports.inquiries import inquiries
from mailrouter.reports.render import FORMATS, render_inquiries_csv, render_report

Handler = Callable[[argparse.Namespace, Config], int]
_RELATIVE = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, tz: tzinfo, now: datetime) -> datetime:
    """'2026-11-01', '2026-11-01T08:30', '7d', '12h', 'today', 'now' -> an aware UTC instant."""
    text = text.strip().lower()
    if text == "now":
        return now
    if text == "today":
        return datetime.combine(now.astimezone(tz).date(), time(0), tz).astimezone(timezone.utc)
    if m := _RELATIVE.fullmatch(text):
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time(0))
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (2026-11-01, 2026-11-01T08:30) or an age (7d, 12h, 2w)") from None
    local = parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
    return local.astimezone(timezone.utc)


def add_report_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `report` and `overdue`; each sets `func(args)`, which loads the config."""
    report = subparsers.add_parser("report", help="first-reply figures per rep, team, rule, ...")
    report.add_argument("--since", default="7d", help="start, local date or age (default: %(default)s)")
    report.add_argument("--until", default="now", help="end, exclusive (default: %(default)s)")
    report.add_argument("--team", action="append", default=[], help="only this team (repeatable)")
    report.add_argument("--rep", action="append", default=[], help="only this rep (repeatable)")
    report.add_argument("--format", choices=FORMATS, default="table",
                        help="table, csv, json, html; inquiries: one CSV row per inquiry, for Excel")
    report.add_argument("--output", type=Path, help="write to this file instead of standard output")
    report.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")
    report.set_defaults(func=_with_config(cmd_report))
    overdue = subparsers.add_parser("overdue", help="open assignments past due now, oldest first")
    overdue.add_argument("--team", action="append", default=[])
    overdue.add_argument("--rep", action="append", default=[])
    overdue.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")
    overdue.set_defaults(func=_with_config(cmd_overdue))


def _with_config(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Adapt a (args, config) handler to the main CLI's `func(args)`."""
    def run(args: argparse.Namespace) -> int:
        from mailrouter.config.load import load_config

        return handler(args, load_config(args.config, resolve_secrets=False))  # logs in nowhere

    return run


def _unknown(config: Config, args: argparse.Namespace) -> str | None:
    teams = [t for t in args.team if t not in config.teams]
    reps = [r for r in args.rep if r not in config.reps]
    if teams or reps:
        return "unknown " + ", ".join([*(f"team {t!r}" for t in teams), *(f"rep {r!r}" for r in reps)])
    return None


def cmd_report(args: argparse.Namespace, config: Config, now: datetime | None = None) -> int:
    now = now or datetime.now(timezone.utc)
    if problem := _unknown(config, args):
        print(f"report: {problem}", file=sys.stderr)
        return 2
    try:
        period = Period(parse_when(args.since, config.timezone, now), parse_when(args.until, config.timezone, now))
    except (argparse.ArgumentTypeError, ValueError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    names = {r.id: r.name for r in config.reps.values()}
    if args.format == "inquiries":
        with open_database(config.database)() as session:
            rows = inquiries(session, period.since, period.until, tuple(args.team), tuple(args.rep))
        _write(render_inquiries_csv(rows, names, args.language or config.language, config.timezone),
               args.output)
        return 0
    with open_database(config.database)() as session:
        report = compute_report(
            session, Scope(period, tuple(args.team), tuple(args.rep)), now, tz=config.timezone,
            members={t.id: t.members for t in config.teams.values()},
            names=names)
    _write(render_report(report, args.format, args.language or config.language, config.timezone,
                         config.template_dirs),
           args.output)
    return 0


def cmd_overdue(args: argparse.Namespace, config: Config, now: datetime | None = None) -> int:
    now = now or datetime.now(timezone.utc)
    if problem := _unknown(config, args):
        print(f"overdue: {problem}", file=sys.stderr)
        return 2
    with open_database(config.database)() as session:
        items = overdue_now(session, now, teams=args.team, reps=args.rep)
    names = {r.id: r.name for r in config.reps.values()}
    _write(render_overdue(items, names, config.timezone, args.language or config.language), None)
    return 0


def _write(text: str, output: Path | None) -> None:
    """To a file as UTF-8 (the CSV's BOM included), or to standard output."""
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8", newline="")
