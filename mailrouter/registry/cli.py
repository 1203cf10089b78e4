"""`mailrouter registry import | export | show | transfer | set-status`.

Each handler takes (args, config) and returns an exit code; `add_registry_parser` wires them
into the main argparse tree so `args.func(args)` loads the config and calls the handler.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailrouter.config.schema import Config
from mailrouter.parse.text import fold
from mailrouter.store import open_database, utcnow
from mailrouter.registry.importer import ImportResult, export_csv, import_file
from mailrouter.registry.match import is_lapsed
from mailrouter.registry.models import CustomerRow, InquiryHistoryRow, OwnerHistoryRow
from mailrouter.registry.record import RegistryError, find_customer, set_status, transfer
from mailrouter.registry.settings import RegistrySettings
from mailrouter.registry.tabular import strip_controls

Handler = Callable[[argparse.Namespace, Config], int]
SHOW_INQUIRIES = 20


def add_registry_parser(subparsers: Any) -> None:
    """Register `registry ...` on the main parser's subparsers object."""
    reg = subparsers.add_parser("registry", help="customer registry: one client, one rep")
    sub = reg.add_subparsers(required=True, metavar="ACTION")
    imp = _action(sub, "import", cmd_import, "import customers from a CSV or XLSX file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--source", required=True, help='where the list comes from, e.g. "Canton Fair 2025"')
    imp.add_argument("--owner", help="rep id owning rows that name no owner")
    imp.add_argument("--on-duplicate", choices=("update", "skip"), default="update")
    imp.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    imp.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                     help="name a column's field (name, email, company, phone, country, owner, "
                     "source, status, reason, or - to ignore it); repeatable")
    exp = _action(sub, "export", cmd_export, "write every customer as CSV (re-importable)")
    exp.add_argument("file", nargs="?", type=Path, help="output file (default: standard output)")
    show = _action(sub, "show", cmd_show, "owner, status and history of a customer")
    show.add_argument("key", metavar="ADDRESS|DOMAIN|COMPANY")
    tr = _action(sub, "transfer", cmd_transfer, "give all of one rep's customers to another")
    tr.add_argument("--from", dest="from_rep", required=True, metavar="REP")
    tr.add_argument("--to", dest="to_rep", required=True, metavar="REP")
    tr.add_argument("--dry-run", action="store_true", help="list the customers that would move, move none")
    st = _action(sub, "set-status", cmd_set_status, "mark a customer active, rejected, do-not-contact or blocked")
    st.add_argument("key", metavar="ADDRESS|DOMAIN|COMPANY")
    st.add_argument("status", choices=("active", "rejected", "do-not-contact", "blocked"))
    st.add_argument("--reason", default="")


def _action(sub: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=_run, handler=handler)
    return parser


def _run(args: argparse.Namespace) -> int:
    from mailrouter.config.load import load_config

    return args.handler(args, load_config(args.config, resolve_secrets=False))  # logs in nowhere


def settings_of(config: Config) -> RegistrySettings:
    # Until config.py grows a `registry` field, the defaults apply.
    return getattr(config, "registry", None) or RegistrySettings()


def _session(config: Config) -> Session:
    return open_database(config.database)()


def _fail(message: str) -> int:
    print(f"registry: {message}", file=sys.stderr)
    return 1


def owner_aliases(config: Config) -> dict[str, str]:
    """Files name owners by rep id or by full name (张伟): both lead to the id."""
    aliases = {fold(rep.name).strip(): rep.id for rep in config.reps.values()}
    aliases.update({fold(rep.id): rep.id for rep in config.reps.values()})
    return aliases


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, fld = pair.partition("=")
        if not sep or not column.strip():
            raise RegistryError(f"--map {pair!r}: write COLUMN=FIELD, e.g. --map 'Tel 2=phone'")
        mapping[column.strip()] = fld.strip()
    return mapping


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    if args.owner and args.owner not in config.reps:
        return _fail(f"--owner {args.owner}: unknown rep (known: {', '.join(config.reps)})")
    with ExitStack() as stack:
        session = stack.enter_context(_session(config))
        try:
            result = import_file(
                session, args.file, source=args.source, owner_aliases=owner_aliases(config),
                free_mail_domains=config.parse.free_mail_domains, now=utcnow(),
                owner=args.owner, on_duplicate=args.on_duplicate, dry_run=args.dry_run,
                mapping=_mapping(args.map), progress=_progress_bar(stack), own_domains=config.own_domains)
        except (RegistryError, OSError, UnicodeDecodeError) as exc:
            return _fail(f"{args.file}: {exc}")
        if not args.dry_run:
            session.commit()
    print(strip_controls(format_result(result, args.source)))
    return 0


def _progress_bar(stack: ExitStack) -> Callable[[int], None]:
    """A tqdm counter on a terminal; rows are streamed, so there is no total to show."""
    from tqdm import tqdm

    bars: list[Any] = []

    def report(done: int) -> None:
        if not bars:
            bars.append(stack.enter_context(tqdm(unit="row", disable=None, file=sys.stderr)))
        bars[0].update(done - bars[0].n)

    return report


def format_result(result: ImportResult, source: str) -> str:
    lines = [f"{source}: created {result.created}, updated {result.updated}, "
             f"unchanged {result.unchanged}, skipped {result.skipped}, "
             f"invalid {max(result.invalid_total, len(result.invalid))}"
             + ("  (dry run: nothing written)" if result.dry_run else "")]
    lines.append("columns: " + "; ".join(f"{f} ← {', '.join(h)}" for f, h in result.columns.items()))
    if result.invalid:
        lines.append("invalid rows:")
        lines += [f"  line {bad.line}: {bad.reason}" for bad in result.invalid]
        lines += _more(result.invalid_total, len(result.invalid), "invalid rows")
    lines += [f"note: {note}" for note in result.notes]
    lines += _more(result.notes_total, len(result.notes), "notes")
    return "\n".join(lines)


def _more(total: int, listed: int, what: str) -> list[str]:
    return [f"  … and {total - listed} more {what} not listed"] if total > listed else []


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    with _session(config) as session:
        if args.file is None:
            try:
                count = export_csv(session, sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:  # `registry export | head`: the reader has what it wanted
                # the interpreter's own flush at exit would fail again (Python docs, "SIGPIPE")
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
        else:
            # utf-8-sig: Excel (and WPS) open the Chinese names correctly only with the BOM.
            with open(args.file, "w", encoding="utf-8-sig", newline="") as out:
                count = export_csv(session, out)
    print(f"exported {count} customer(s)", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace, config: Config) -> int:
    with _session(config) as session:
        try:
            row = find_customer(session, args.key)
        except RegistryError as exc:
            return _fail(str(exc))
        print(strip_controls(describe_customer(session, row, config, utcnow())))
    return 0


def describe_customer(session: Session, row: CustomerRow, config: Config, now: datetime) -> str:
    quiet = settings_of(config).quiet_days
    def when(t: datetime | None) -> str:  # in the office's time zone, as reps think of it
        return t.astimezone(config.timezone).strftime("%Y-%m-%d %H:%M") if t else "-"

    lapse = "lapsed" if is_lapsed(row.last_contact, now, quiet) else "held"
    status = row.status + (f" ({row.status_reason})" if row.status_reason else "")
    lines = [f"customer #{row.id}: {row.company or '(no company)'}  {row.contact_name}".rstrip(),
             f"  owner:    {row.owner or '-'} since {when(row.owner_since)} "
             f"({lapse}: last contact {when(row.last_contact)}, quiet period {quiet} days)",
             f"  status:   {status}",
             f"  source:   {row.source or '-'}; country {row.country or '-'}; "
             f"first seen {when(row.first_seen)}; last inquiry {when(row.last_inquiry)}",
             f"  emails:   {', '.join(sorted(e.email for e in row.emails)) or '-'}",
             f"  domains:  {', '.join(sorted(d.domain for d in row.domains)) or '-'}",
             f"  phones:   {', '.join(sorted(p.e164 for p in row.phones)) or '-'}",
             f"  aliases:  {'; '.join(a.alias for a in row.aliases) or '-'}",
             "  owners:"]
    owners = session.scalars(select(OwnerHistoryRow).where(OwnerHistoryRow.customer_id == row.id)
                             .order_by(OwnerHistoryRow.at, OwnerHistoryRow.id))
    lines += [f"    {when(h.at)}  {h.from_rep or '-'} → {h.to_rep or '-'}  {h.reason}" for h in owners]
    inquiries = session.scalars(select(InquiryHistoryRow)
                                .where(InquiryHistoryRow.customer_id == row.id)
                                .order_by(InquiryHistoryRow.at.desc()).limit(SHOW_INQUIRIES)).all()
    lines.append(f"  inquiries (latest {SHOW_INQUIRIES}):" if inquiries else "  inquiries: none")
    lines += [f"    {when(q.at)}  → {q.rep or '-'}  {q.sender}  {q.subject}  {q.message_id}"
              for q in inquiries]
    return "\n".join(lines)


def cmd_transfer(args: argparse.Namespace, config: Config) -> int:
    if args.to_rep not in config.reps:
        return _fail(f"--to {args.to_rep}: unknown rep (known: {', '.join(config.reps)})")
    if args.from_rep == args.to_rep:
        return _fail("--from and --to are the same rep")
    with _session(config) as session:
        moving = [customer_line(row) for row in session.scalars(
            select(CustomerRow).where(CustomerRow.owner == args.from_rep).order_by(CustomerRow.id))]
        if args.dry_run:
            print(f"would transfer {len(moving)} customer(s) from {args.from_rep} to {args.to_rep} "
                  "(dry run: nothing changed)")
            print("\n".join(f"  {line}" for line in moving) if moving else "  (none)")
            return 0
        try:
            count = transfer(session, args.from_rep, args.to_rep, utcnow())
        except RegistryError as exc:
            return _fail(str(exc))
        session.commit()
    print(f"transferred {count} customer(s) from {args.from_rep} to {args.to_rep}")
    print("\n".join(f"  {line}" for line in moving))
    return 0


def customer_line(row: CustomerRow) -> str:
    """One line a person recognises a customer by: company, contact, first address, country."""
    address = row.emails[0].email if row.emails else (row.domains[0].domain if row.domains else "")
    parts = [row.company or row.contact_name or f"customer #{row.id}",
             row.contact_name if row.company else "", f"<{address}>" if address else "", row.country or ""]
    return " ".join(p for p in parts if p)


def cmd_set_status(args: argparse.Namespace, config: Config) -> int:
    if args.status == "rejected" and not args.reason:
        return _fail("a rejected customer needs --reason (the owner sees it on the next inquiry)")
    with _session(config) as session:
        try:
            row = set_status(session, args.key, args.status, args.reason)
        except RegistryError as exc:
            return _fail(str(exc))
        session.commit()
        print(f"customer #{row.id} {row.company or args.key}: {row.status}"
              + (f" ({row.status_reason})" if row.status_reason else ""))
    return 0
