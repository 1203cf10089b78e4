"""Command line: `mailrouter run | check | init | unit | explain | demo | status | dry-run | db | rep | registry …`.

`python run.py …` is the same from a checkout. Commands import what they need when they run,
so `mailrouter check` on a broken install still says what is wrong.
"""
from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from pathlib import Path

from mailrouter.config.load import load_config
from mailrouter.config.reader import ConfigError
from mailrouter.store import SchemaError
from mailrouter.runtime.logsetup import setup_logging
from mailrouter.runtime.routerkey import with_installation_key

DEFAULT_CONFIG = "config.toml"
PROBLEMS_HEADING = {"en": "configuration has {n} problem(s):", "zh": "配置有 {n} 个问题："}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return args.func(args)
    except ConfigError as exc:  # the config did not load, so only --language can choose
        heading = PROBLEMS_HEADING["zh" if getattr(args, "language", None) == "zh" else "en"]
        print(heading.format(n=len(exc.problems)), file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except SchemaError as exc:
        print(f"database: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    from mailrouter.resources import version

    parser = argparse.ArgumentParser(prog="mailrouter", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mailrouter {version()}")
    parser.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="text (journald-friendly) or one JSON object per line")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT; SIGHUP reloads").set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="validate config, rules and templates, then try every login "
                           "(mailboxes, SMTP, reply sources)")
    check.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")
    check.set_defaults(func=cmd_check)
    init = sub.add_parser("init", help="write the annotated config.toml and default rules into a folder")
    init.add_argument("folder", type=Path, help="e.g. /etc/mailrouter; existing files are kept")
    init.add_argument("--language", choices=("en", "zh"), help="en or zh (default: en; there is no config yet)")
    init.set_defaults(func=cmd_init)
    unit = sub.add_parser("unit", help="print the systemd drop-in for this config "
                          "(ExecStart, ExecReload with check, one LoadCredential= per secret)")
    unit.add_argument("--service", action="store_true", help="print the packaged mailrouter.service instead")
    unit.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")
    unit.set_defaults(func=cmd_unit)
    explain = sub.add_parser("explain", help="show which rule fires for a message file, and why")
    explain.add_argument("eml", type=Path, help="a message saved as .eml")
    explain.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")
    explain.set_defaults(func=cmd_explain)
    demo = sub.add_parser("demo", help="route sample inquiries on a throwaway local mail server")
    demo.add_argument("--keep", action="store_true", help="keep the demo's files for a look")
    demo.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")
    demo.set_defaults(func=cmd_demo)
    status = sub.add_parser("status", help="health summary from the database")
    status.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")
    status.set_defaults(func=cmd_status)
    _add_dry_run(sub)
    _add_db(sub)
    _add_rep(sub)
    suggest = sub.add_parser("suggest-rules", help="rules that would have caught recent manual assignments")
    suggest.add_argument("--last", type=int, default=50, help="how many manual assignments (default 50)")
    suggest.add_argument("--min-hits", type=int, default=3,
                         help="manual assignments a trait needs before it is suggested (default 3)")
    suggest.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")
    suggest.set_defaults(func=cmd_suggest)
    from mailrouter.registry.cli import add_registry_parser
    from mailrouter.reports.cli import add_report_parsers

    add_registry_parser(sub)
    add_report_parsers(sub)
    return parser


DRY_RUN_CHANGES = 3  # not 1, which already means the run itself failed


def _add_dry_run(sub) -> None:
    dry = sub.add_parser("dry-run", help="replay past mail through the current rules; changes nothing")
    dry.add_argument("--mailbox", required=True, help="a [[mailbox]] name")
    dry.add_argument("--folder", help="one folder (default: INBOX and every folder mailrouter files into)")
    dry.add_argument("--since", help="e.g. 30d, 2w, 6m or 2026-10-01")
    dry.add_argument("--changes-only", action="store_true", help="print only what would change")
    dry.add_argument("--exit-code", action="store_true",
                     help=f"exit {DRY_RUN_CHANGES} when something would change, 0 when nothing would "
                          "(for scripts, like git diff --exit-code; 1 stays an error)")
    dry.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")
    dry.add_argument("--first-start", action="store_true",
                     help="show what starting the daemon would adopt and route in this mailbox")
    dry.set_defaults(func=cmd_dry_run)


def _add_rep(sub) -> None:
    rep = sub.add_parser("rep", help="mark reps away or back")
    actions = rep.add_subparsers(required=True, metavar="ACTION")
    away = actions.add_parser("away", help="no new assignments until a date; open ones follow the ladder")
    away.add_argument("rep")
    away.add_argument("--until", required=True, help="date (YYYY-MM-DD) or date and time, in the config's time zone")
    away.add_argument("--note", default="")
    away.set_defaults(func=cmd_rep_away)
    back = actions.add_parser("back", help="take new assignments again")
    back.add_argument("rep")
    back.set_defaults(func=cmd_rep_back)
    listed = actions.add_parser("list", help="who is away")
    listed.set_defaults(func=cmd_rep_list)
    for action in (away, back, listed):
        action.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")


def cmd_run(args: argparse.Namespace) -> int:
    from mailrouter.runtime.daemon import Daemon

    Daemon(load_config(args.config)).run_forever()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from mailrouter.runtime.preflight import check_servers, check_summary

    config = load_config(args.config)
    language = args.language or config.language
    print(check_summary(config, language))
    return 0 if check_servers(config, language) else 1


def cmd_init(args: argparse.Namespace) -> int:
    from mailrouter.commands.unit import init_config_dir, labels

    t = labels(args.language or "en")
    for path in init_config_dir(args.folder):
        print(t["wrote"].format(path=path))
    print(t["next"].format(config=args.folder / "config.toml", credentials=args.folder / "credentials"))
    return 0


def cmd_unit(args: argparse.Namespace) -> int:
    from mailrouter.commands.unit import (config_language, dropin, installed_executable, labels,
                                          unit_notes)
    from mailrouter.config.load import Problem, read_toml
    from mailrouter.resources import packaged

    if args.service:
        print(packaged("systemd").joinpath("mailrouter.service").read_text(encoding="utf-8"), end="")
        return 0
    problems: list[Problem] = []
    data = read_toml(Path(args.config), problems)
    if problems:
        raise ConfigError(problems)
    language = args.language or config_language(data)
    print(dropin(data, Path(args.config), installed_executable(), language), end="")
    for note in unit_notes(data, Path(args.config), language):  # seen even when stdout goes to the drop-in file
        print(labels(language)["note"].format(note=note), file=sys.stderr)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from mailrouter.commands.explain import explain_file
    from mailrouter.store import database_exists, open_database

    # the installation's marker key, if it exists and is readable: our own forwards are told apart
    config = with_installation_key(load_config(args.config, resolve_secrets=False), create=False)
    # the registry and team state as the daemon reads them; before the first start there are none
    sessions = open_database(config.database) if database_exists(config.database) else None
    print(explain_file(config, args.eml, args.language or config.language, sessions))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from mailrouter.commands.demo import run_demo
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "aiosmtpd":
            raise
        print("demo: the test mail server needs aiosmtpd, which a production install leaves out; "
              "install it with: pip install 'mailrouter[demo]' (scripts/setup does this)", file=sys.stderr)
        return 2
    config = Path(args.config)
    if args.config == DEFAULT_CONFIG and not config.exists():
        from mailrouter.resources import packaged

        config = packaged("config.toml")  # an installed wheel: the example config it ships
    return run_demo(config, keep=args.keep, log_level=args.log_level, language=args.language)


def cmd_status(args: argparse.Namespace) -> int:
    from mailrouter.commands.status import format_status, status_summary
    from mailrouter.store import open_database, utcnow

    config = load_config(args.config, resolve_secrets=False)
    print(format_status(status_summary(open_database(config.database), config, utcnow()),
                        args.language or config.language))
    return 0


def _add_db(sub) -> None:
    db = sub.add_parser("db", help="the database: schema revision, upgrade, copy to PostgreSQL")
    actions = db.add_subparsers(required=True, metavar="ACTION")
    current = actions.add_parser("current", help="print the schema revision and whether it is current")
    current.set_defaults(func=cmd_db, action="current")
    upgrade = actions.add_parser("upgrade", help="bring the schema up to date (a SQLite file is copied first); "
                                 "`run` does this by itself")
    upgrade.set_defaults(func=cmd_db, action="upgrade")
    copy = actions.add_parser("copy", help="copy every table into an empty database, e.g. PostgreSQL; "
                              "stop the daemon first, then point daemon.database at the new URL")
    copy.add_argument("--to", required=True, metavar="URL", help="e.g. postgresql+psycopg://mailrouter@db/mailrouter")
    copy.set_defaults(func=cmd_db, action="copy")
    for action in (current, upgrade, copy):
        action.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")


def cmd_db(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from mailrouter.commands import db
    from mailrouter.store import database_label

    config = load_config(args.config, resolve_secrets=False)  # logs in nowhere
    language = args.language or config.language
    t = db.labels(language)
    colon = "：" if language == "zh" else ": "
    try:
        if args.action == "current":
            print(f"{database_label(config.database)}{colon}{db.current(config.database, language)}")
        elif args.action == "upgrade":
            print(f"{database_label(config.database)}{colon}{db.upgrade(config.database, language)}")
        else:
            copied = db.copy(config.database, args.to, language=language,
                             progress=lambda c: print(t["rows"].format(table=c.table, rows=c.rows)))
            print(t["copied"].format(rows=sum(c.rows for c in copied), tables=len(copied), path=config.path))
    except (db.CopyRefused, SQLAlchemyError) as exc:
        print(t["failed"].format(action=args.action, error=exc), file=sys.stderr)
        return 1
    return 0


def _first_start_preview(config, mailbox_name: str, language: str) -> int:
    from mailrouter.commands.dryrun import find_mailbox
    from mailrouter.commands.firstlook import format_preview, preview_first_start
    from mailrouter.intake.imap import ImapError

    try:
        mailbox = find_mailbox(config, mailbox_name)
        format_preview(mailbox, preview_first_start(config, mailbox_name), sys.stdout, language)
    except (ImapError, ValueError) as exc:
        print(f"dry-run: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_dry_run(args: argparse.Namespace) -> int:
    from mailrouter.commands.dryrun import dry_run, format_dry_run, parse_since
    from mailrouter.intake.imap import ImapError

    config = with_installation_key(load_config(args.config), create=False)  # read only: never made here
    if args.first_start:
        return _first_start_preview(config, args.mailbox, args.language or config.language)
    try:
        since = parse_since(args.since, date.today()) if args.since else None
        results = dry_run(config, args.mailbox, args.folder, since, progress=sys.stderr.isatty())
        totals = format_dry_run(results, sys.stdout, args.changes_only, args.language or config.language)
    except (ImapError, ValueError) as exc:
        print(f"dry-run: {exc}", file=sys.stderr)
        return 1
    return DRY_RUN_CHANGES if args.exit_code and totals.changed else 0


def cmd_suggest(args: argparse.Namespace) -> int:
    from mailrouter.store import open_database
    from dataclasses import replace

    from mailrouter.commands.suggest import also_caught, format_suggestions, recent_manual, suggest

    config = load_config(args.config, resolve_secrets=False)
    with open_database(config.database)() as session:
        cases = recent_manual(session, args.last)
        found = [replace(s, also=also_caught(session, s))
                 for s in suggest(cases, min_hits=args.min_hits, free_mail=config.parse.free_mail_domains)]
    print(format_suggestions(found, len(cases), args.language or config.language))
    return 0


def cmd_rep_away(args: argparse.Namespace) -> int:
    from mailrouter.commands.rep import set_away

    config = load_config(args.config, resolve_secrets=False)
    language = args.language or config.language
    until = _parse_local(args.until, config, language)
    print(set_away(config, args.rep, until, args.note, language=language))
    return 0


def cmd_rep_back(args: argparse.Namespace) -> int:
    from mailrouter.commands.rep import set_back

    config = load_config(args.config, resolve_secrets=False)
    print(set_back(config, args.rep, args.language or config.language))
    return 0


def cmd_rep_list(args: argparse.Namespace) -> int:
    from mailrouter.commands.rep import list_away

    config = load_config(args.config, resolve_secrets=False)
    print(list_away(config, args.language or config.language))
    return 0


UNTIL_FORMAT = {"en": "--until: {text!r} is not a date like 2026-12-24 or 2026-12-24T18:00",
                "zh": "--until：{text!r} 不是日期，应写作 2026-12-24 或 2026-12-24T18:00"}


def _parse_local(text: str, config, language: str = "en") -> datetime:
    """A date means the end of that day; times are in the config's time zone."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(UNTIL_FORMAT["zh" if language == "zh" else "en"].format(text=text))
    if len(text) <= 10:
        value = value.replace(hour=23, minute=59, second=59)
    return value.replace(tzinfo=config.timezone) if value.tzinfo is None else value


if __name__ == "__main__":
    sys.exit(main())
