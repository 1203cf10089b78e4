"""Command line: `mailrouter run | check | explain | demo` (also `python run.py ...`)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import ConfigError, load_config

DEFAULT_CONFIG = "config.toml"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"configuration has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailrouter", description=__doc__)
    parser.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT").set_defaults(func=cmd_run)
    sub.add_parser("check", help="validate config and rules, then try the IMAP and SMTP logins"
                   ).set_defaults(func=cmd_check)
    explain = sub.add_parser("explain", help="show which rule fires for a message file, and why")
    explain.add_argument("eml", type=Path, help="a message saved as .eml")
    explain.set_defaults(func=cmd_explain)
    demo = sub.add_parser("demo", help="route sample inquiries on a throwaway local mail server")
    demo.add_argument("--keep", action="store_true", help="leave the demo's files in .demo/ for a look")
    demo.set_defaults(func=cmd_demo)
    from .registry.cli import add_registry_parser

    add_registry_parser(sub)
    return parser


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import Daemon

    Daemon(load_config(args.config)).run_forever()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .checks import check_servers

    config = load_config(args.config)
    print(f"{config.path}: OK — {len(config.mailboxes)} mailbox(es), {len(config.reps)} rep(s), "
          f"{len(config.teams)} team(s), {len(config.rules.rules)} rule(s) from "
          f"{len(config.rules.files)} file(s)")
    return 0 if check_servers(config) else 1


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain_file

    print(explain_file(load_config(args.config), args.eml))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.config), keep=args.keep)



if __name__ == "__main__":
    sys.exit(main())
