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

# Every line the registry commands print, per language (issue 15 item 6), as commands/rep.py
# does it, and a refused row's reason with them (importer.ROW_REASONS). Rep ids stay as typed
# on the command line, the stored history as written. The show labels are padded so values
# start in one column (a CJK character takes two).
LABELS = {
    "en": {"fail": "registry: {message}", "unknown_rep": "{option} {rep}: unknown rep (known: {known})",
           "same_rep": "--from and --to are the same rep",
           "needs_reason": "a rejected customer needs --reason (the owner sees it on the next inquiry)",
           "summary": "{source}: created {created}, updated {updated}, unchanged {unchanged}, "
                      "skipped {skipped}, invalid {invalid}", "dry_import": "  (dry run: nothing written)",
           "columns": "columns: ", "sep": "; ", "invalid_rows": "invalid rows:", "line": "  line {line}: {reason}",
           "note": "note: {note}", "more": "  … and {n} more {what} not listed",
           "more_invalid": "invalid rows", "more_notes": "notes",
           "exported": "exported {count} customer(s)",
           "customer": "customer #{id}: {company}  {contact}", "no_company": "(no company)",
           "owner": "  owner:    {owner} since {since} ({lapse}: last contact {contact}, quiet period {quiet} days)",
           "lapsed": "lapsed", "held": "held",
           "status": "  status:   {status}", "reason": " ({reason})",
           "source": "  source:   {source}; country {country}; first seen {first}; last inquiry {last}",
           "emails": "  emails:   {v}", "domains": "  domains:  {v}", "phones": "  phones:   {v}",
           "aliases": "  aliases:  {v}", "owners": "  owners:",
           "inquiries": "  inquiries (latest {n}):", "no_inquiries": "  inquiries: none",
           "would_transfer": "would transfer {n} customer(s) from {src} to {dst} (dry run: nothing changed)",
           "none": "  (none)", "transferred": "transferred {n} customer(s) from {src} to {dst}",
           "set_status": "customer #{id} {name}: {status}", "language": "en"},
    "zh": {"fail": "registry：{message}", "unknown_rep": "{option} {rep}：未知业务员（已配置：{known}）",
           "same_rep": "--from 和 --to 是同一个业务员",
           "needs_reason": "标记为 rejected 的客户需要 --reason（客户再次询盘时负责人会看到）",
           "summary": "{source}：新建 {created}，更新 {updated}，未变 {unchanged}，"
                      "跳过 {skipped}，无效 {invalid}", "dry_import": "（试运行：未写入）",
           "columns": "列：", "sep": "；", "invalid_rows": "无效行：", "line": "  第 {line} 行：{reason}",
           "note": "注意：{note}", "more": "  ……另有 {n} 条{what}未列出",
           "more_invalid": "无效行", "more_notes": "注意事项",
           "exported": "已导出 {count} 个客户",
           "customer": "客户 #{id}：{company}  {contact}", "no_company": "（无公司名）",
           "owner": "  负责人：  {owner}，自 {since} 起（{lapse}：最近联系 {contact}，保护期 {quiet} 天）",
           "lapsed": "已过保护期", "held": "保护中",
           "status": "  状态：    {status}", "reason": "（{reason}）",
           "source": "  来源：    {source}；国家 {country}；首次出现 {first}；最近询盘 {last}",
           "emails": "  邮箱：    {v}", "domains": "  域名：    {v}", "phones": "  电话：    {v}",
           "aliases": "  别名：    {v}", "owners": "  负责人变更：",
           "inquiries": "  询盘（最近 {n} 条）：", "no_inquiries": "  询盘：无",
           "would_transfer": "将从 {src} 转给 {dst} 的客户 {n} 个（试运行：未做任何更改）",
           "none": "  （无）", "transferred": "已将 {n} 个客户从 {src} 转给 {dst}",
           "set_status": "客户 #{id} {name}：{status}", "language": "zh"},
}


def labels(language: str) -> dict[str, str]:
    return LABELS["zh" if language == "zh" else "en"]


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
    parser.add_argument("--language", choices=("en", "zh"), help="en or zh (default: daemon.language)")
    parser.set_defaults(func=_run, handler=handler)
    return parser


def _labels(args: argparse.Namespace, config: Config) -> dict[str, str]:
    return labels(getattr(args, "language", None) or config.language)


def _run(args: argparse.Namespace) -> int:
    from mailrouter.config.load import load_config

    return args.handler(args, load_config(args.config, resolve_secrets=False))  # logs in nowhere


def settings_of(config: Config) -> RegistrySettings:
    # Until config.py grows a `registry` field, the defaults apply.
    return getattr(config, "registry", None) or RegistrySettings()


def _session(config: Config) -> Session:
    return open_database(config.database)()


def _fail(message: str, t: dict[str, str] = LABELS["en"]) -> int:
    print(t["fail"].format(message=message), file=sys.stderr)
    return 1


def _unknown_rep(option: str, rep: str, config: Config, t: dict[str, str]) -> int:
    return _fail(t["unknown_rep"].format(option=option, rep=rep, known=", ".join(config.reps)), t)


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
    t = _labels(args, config)
    if args.owner and args.owner not in config.reps:
        return _unknown_rep("--owner", args.owner, config, t)
    with ExitStack() as stack:
        session = stack.enter_context(_session(config))
        try:
            result = import_file(
                session, args.file, source=args.source, owner_aliases=owner_aliases(config),
                free_mail_domains=config.parse.free_mail_domains, now=utcnow(),
                owner=args.owner, on_duplicate=args.on_duplicate, dry_run=args.dry_run,
                mapping=_mapping(args.map), progress=_progress_bar(stack), own_domains=config.own_domains)
        except (RegistryError, OSError, UnicodeDecodeError) as exc:
            return _fail(f"{args.file}: {exc}", t)
        if not args.dry_run:
            session.commit()
    print(strip_controls(format_result(result, args.source, t)))
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


def format_result(result: ImportResult, source: str, t: dict[str, str] = LABELS["en"]) -> str:
    lines = [t["summary"].format(source=source, created=result.created, updated=result.updated,
                                 unchanged=result.unchanged, skipped=result.skipped,
                                 invalid=max(result.invalid_total, len(result.invalid)))
             + (t["dry_import"] if result.dry_run else "")]
    lines.append(t["columns"] + t["sep"].join(f"{f} ← {', '.join(h)}" for f, h in result.columns.items()))
    if result.invalid:
        lines.append(t["invalid_rows"])
        lines += [t["line"].format(line=bad.line, reason=bad.reason_in(t["language"])) for bad in result.invalid]
        lines += _more(result.invalid_total, len(result.invalid), t["more_invalid"], t)
    lines += [t["note"].format(note=note) for note in result.notes]
    lines += _more(result.notes_total, len(result.notes), t["more_notes"], t)
    return "\n".join(lines)


def _more(total: int, listed: int, what: str, t: dict[str, str]) -> list[str]:
    return [t["more"].format(n=total - listed, what=what)] if total > listed else []


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    t = _labels(args, config)
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
    print(t["exported"].format(count=count), file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace, config: Config) -> int:
    t = _labels(args, config)
    with _session(config) as session:
        try:
            row = find_customer(session, args.key)
        except RegistryError as exc:
            return _fail(str(exc), t)
        print(strip_controls(describe_customer(session, row, config, utcnow(), t)))
    return 0


def describe_customer(session: Session, row: CustomerRow, config: Config, now: datetime,
                      t: dict[str, str] = LABELS["en"]) -> str:
    quiet = settings_of(config).quiet_days
    def when(at: datetime | None) -> str:  # in the office's time zone, as reps think of it
        return at.astimezone(config.timezone).strftime("%Y-%m-%d %H:%M") if at else "-"

    lapse = t["lapsed"] if is_lapsed(row.last_contact, now, quiet) else t["held"]
    status = row.status + (t["reason"].format(reason=row.status_reason) if row.status_reason else "")
    lines = [t["customer"].format(id=row.id, company=row.company or t["no_company"],
                                  contact=row.contact_name).rstrip(),
             t["owner"].format(owner=row.owner or "-", since=when(row.owner_since), lapse=lapse,
                               contact=when(row.last_contact), quiet=quiet),
             t["status"].format(status=status),
             t["source"].format(source=row.source or "-", country=row.country or "-",
                                first=when(row.first_seen), last=when(row.last_inquiry)),
             t["emails"].format(v=", ".join(sorted(e.email for e in row.emails)) or "-"),
             t["domains"].format(v=", ".join(sorted(d.domain for d in row.domains)) or "-"),
             t["phones"].format(v=", ".join(sorted(p.e164 for p in row.phones)) or "-"),
             t["aliases"].format(v="; ".join(a.alias for a in row.aliases) or "-"),
             t["owners"]]
    owners = session.scalars(select(OwnerHistoryRow).where(OwnerHistoryRow.customer_id == row.id)
                             .order_by(OwnerHistoryRow.at, OwnerHistoryRow.id))
    lines += [f"    {when(h.at)}  {h.from_rep or '-'} → {h.to_rep or '-'}  {h.reason}" for h in owners]
    inquiries = session.scalars(select(InquiryHistoryRow)
                                .where(InquiryHistoryRow.customer_id == row.id)
                                .order_by(InquiryHistoryRow.at.desc()).limit(SHOW_INQUIRIES)).all()
    lines.append(t["inquiries"].format(n=SHOW_INQUIRIES) if inquiries else t["no_inquiries"])
    lines += [f"    {when(q.at)}  → {q.rep or '-'}  {q.sender}  {q.subject}  {q.message_id}"
              for q in inquiries]
    return "\n".join(lines)


def cmd_transfer(args: argparse.Namespace, config: Config) -> int:
    t = _labels(args, config)
    if args.to_rep not in config.reps:
        return _unknown_rep("--to", args.to_rep, config, t)
    if args.from_rep == args.to_rep:
        return _fail(t["same_rep"], t)
    with _session(config) as session:
        moving = [customer_line(row) for row in session.scalars(
            select(CustomerRow).where(CustomerRow.owner == args.from_rep).order_by(CustomerRow.id))]
        if args.dry_run:
            print(t["would_transfer"].format(n=len(moving), src=args.from_rep, dst=args.to_rep))
            print("\n".join(f"  {line}" for line in moving) if moving else t["none"])
            return 0
        try:
            count = transfer(session, args.from_rep, args.to_rep, utcnow())
        except RegistryError as exc:
            return _fail(str(exc), t)
        session.commit()
    print(t["transferred"].format(n=count, src=args.from_rep, dst=args.to_rep))
    print("\n".join(f"  {line}" for line in moving))
    return 0


def customer_line(row: CustomerRow) -> str:
    """One line a person recognises a customer by: company, contact, first address, country."""
    address = row.emails[0].email if row.emails else (row.domains[0].domain if row.domains else "")
    parts = [row.company or row.contact_name or f"customer #{row.id}",
             row.contact_name if row.company else "", f"<{address}>" if address else "", row.country or ""]
    return " ".join(p for p in parts if p)


def cmd_set_status(args: argparse.Namespace, config: Config) -> int:
    t = _labels(args, config)
    if args.status == "rejected" and not args.reason:
        return _fail(t["needs_reason"], t)
    with _session(config) as session:
        try:
            row = set_status(session, args.key, args.status, args.reason)
        except RegistryError as exc:
            return _fail(str(exc), t)
        session.commit()
        print(t["set_status"].format(id=row.id, name=row.company or args.key, status=row.status)
              + (t["reason"].format(reason=row.status_reason) if row.status_reason else ""))
    return 0
