"""Import contact lists (trade-show scanners, B2B platforms, spreadsheets) and export the registry.

One call is one transaction: the caller commits only after every row went in, so a failure
leaves nothing half-imported. Rows are recognised with match.first_hit, the rule routing uses,
against the registry and against the rows before them in the same file.
"""
from __future__ import annotations

import csv
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailrouter.parse.countries import country_code
from mailrouter.parse.text import fold
from mailrouter.registry.batch import Batch
from mailrouter.registry.keys import SenderKeys, corporate_domain
from mailrouter.registry.models import CustomerRow
from mailrouter.registry.normalise import company_key, company_names, normalise_phone, split_aliases
from mailrouter.registry.record import RegistryError, parse_status
from mailrouter.registry.tabular import Row, TableError, read_rows, strip_controls
from mailrouter.spreadsheet import neutralise, unneutralise

FIELDS = ("name", "email", "company", "phone", "country", "owner", "source", "status", "reason",
          "aliases")
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "contact", "contact name", "contact person", "full name", "姓名", "联系人",
             "名字", "客户姓名"),
    "email": ("email", "e-mail", "email address", "e-mail address", "mail", "emails", "邮箱",
              "电子邮件", "电子邮箱", "邮件", "邮箱地址"),
    "company": ("company", "company name", "organisation", "organization", "firm", "公司",
                "公司名称", "单位", "企业名称", "客户名称"),
    "phone": ("phone", "tel", "telephone", "mobile", "cell", "mobile phone", "whatsapp",
              "phone number", "phones", "电话", "手机", "联系电话", "手机号", "手机号码", "座机"),
    "country": ("country", "country/region", "country region", "国家", "国家/地区", "国家地区"),
    "owner": ("owner", "rep", "sales", "sales rep", "salesperson", "负责人", "业务员", "跟进人"),
    "source": ("source", "lead source", "来源", "客户来源"),
    "status": ("status", "状态"),
    "reason": ("reason", "status reason", "原因", "备注原因"),
    "aliases": ("aliases", "alias", "other names", "also known as", "aka", "trading name",
                "english name", "company english name", "别名", "其他名称", "英文名", "英文名称",
                "公司英文名", "中文名", "中文名称", "公司中文名"),
}
IGNORE = ("", "-", "ignore")
_EMAIL = re.compile(r"^[^@\s<>(),;:\"]+@[^@\s<>(),;:\"]+\.[^@\s<>(),;:\"]+$")
_EMAIL_SPLIT = re.compile(r"[;,\s]+")
_PHONE_SPLIT = re.compile(r"[;,/|\n]+")
CHUNK = 1000  # rows looked up together: three IN queries per chunk instead of three per row
# The longest cell each field takes (the column sizes in models.py; free text a little more).
FIELD_LIMITS = {"name": 200, "email": 2000, "company": 300, "phone": 500, "country": 100,
                "owner": 100, "source": 200, "status": 50, "reason": 2000, "aliases": 3000}
LISTED = 1000  # invalid rows and notes kept for the report; the rest are only counted


def header_key(header: str) -> str:
    """"E-mail:", "EMAIL " and "e mail" agree; Chinese headers keep their characters."""
    return "".join(ch for ch in fold(header) if unicodedata.category(ch)[0] in "LN")


_ALIAS_TO_FIELD = {header_key(a): f for f, aliases in HEADER_ALIASES.items() for a in aliases}


class ImportFailed(RegistryError):
    """The file cannot be imported at all (no usable columns, bad --map, unreadable)."""


# Why a row is refused, in the languages `registry import` speaks (--language).
ROW_REASONS = {
    "en": {"too_long": "{field}: {length} characters (at most {limit})",
           "alias_too_long": "aliases: {name!r}… has {length} characters (at most {limit})",
           "own_domain": "{email} is at our own mail domain: our own people are never customers",
           "no_key": "nothing to recognise the customer by: needs an email, or a company name and a phone",
           "bad_status": "unknown status {value!r} (use active, rejected, do-not-contact or blocked)",
           "bad_email": "bad email {email!r}",
           "bad_phone": "unparseable phone {raw!r}",
           "bad_national_phone": "unparseable phone {raw!r} (no country column to read a national number)",
           "unknown_owner": "unknown owner rep {owner!r}"},
    "zh": {"too_long": "{field}：{length} 个字符（最多 {limit} 个）",
           "alias_too_long": "别名 {name!r}… 有 {length} 个字符（最多 {limit} 个）",
           "own_domain": "{email} 是本公司自己的邮件域名：自己人不是客户",
           "no_key": "没有可识别客户的信息：需要邮箱，或公司名加电话",
           "bad_status": "未知状态 {value!r}（可用 active、rejected、do-not-contact、blocked）",
           "bad_email": "邮箱地址无效 {email!r}",
           "bad_phone": "无法解析的电话 {raw!r}",
           "bad_national_phone": "无法解析的电话 {raw!r}（没有国家列，无法读取国内号码）",
           "unknown_owner": "未知的负责业务员 {owner!r}"},
}


@dataclass(frozen=True)
class InvalidRow:
    line: int  # 1-based, as a spreadsheet shows it
    reason: str  # in English, as logs and the database keep it
    column: str = ""  # the field at fault, when one is
    why: str = ""  # a key of ROW_REASONS, to say `reason` in another language
    details: tuple[tuple[str, object], ...] = ()

    def reason_in(self, language: str) -> str:
        words = ROW_REASONS.get(language, ROW_REASONS["en"])
        return words[self.why].format(**dict(self.details)) if self.why in words else self.reason


class RowProblem(ValueError):
    """Why one row cannot be imported (a key of ROW_REASONS and its details), and which field."""

    def __init__(self, why: str, column: str = "", **details: object):
        super().__init__(ROW_REASONS["en"][why].format(**details))
        self.why, self.column, self.details = why, column, tuple(details.items())


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0  # known customers the file had nothing new about
    skipped: int = 0  # known customers left alone with --on-duplicate skip
    invalid: list[InvalidRow] = field(default_factory=list)  # the first LISTED of them
    invalid_total: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. owner conflicts kept as they were
    notes_total: int = 0
    columns: dict[str, list[str]] = field(default_factory=dict)  # field -> headers used
    dry_run: bool = False


@dataclass(frozen=True)
class ImportRecord:
    line: int
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    company: str
    name: str
    country: str | None
    owner: str | None
    source: str
    status: str | None
    reason: str
    aliases: tuple[str, ...] = ()  # other names of the company, the company's own excluded


@dataclass(frozen=True)
class RowRules:
    """What validating a row needs besides the row."""

    owner_aliases: Mapping[str, str]  # rep id or name, folded -> rep id
    default_owner: str | None
    source: str
    own_domains: frozenset[str] = frozenset()  # our own mail domains: never a customer's


ProgressCallback = Callable[[int], None]  # rows done: the total is unknown until the end


def detect_mapping(header: Sequence[str], overrides: Mapping[str, str] | None = None,
                   ) -> dict[str, list[int]]:
    """field -> column indexes; `overrides` maps a header (or its alias form) to a field."""
    forced = {header_key(col): fld.strip().lower() for col, fld in (overrides or {}).items()}
    for col, fld in forced.items():
        if fld not in FIELDS and fld not in IGNORE:
            raise ImportFailed(f"--map {col}={fld}: unknown field (known: {', '.join(FIELDS)})")
    missing = set(forced) - {header_key(h) for h in header}
    if missing:
        raise ImportFailed(f"--map names column(s) not in the file: {', '.join(sorted(missing))}")
    mapping: dict[str, list[int]] = {}
    for index, title in enumerate(header):
        key = header_key(title)
        fld = forced.get(key, _ALIAS_TO_FIELD.get(key, ""))
        if fld not in IGNORE:
            mapping.setdefault(fld, []).append(index)
    return mapping


def find_header(rows: Sequence[Row], overrides: Mapping[str, str] | None) -> int:
    """Index of the header row: exports often start with a title line or two."""
    wanted = {header_key(k) for k in (overrides or {})}
    for i, (_, cells) in enumerate(rows[:10]):
        titles = {header_key(c) for c in cells if c.strip()}
        known = {t for t in titles if t in _ALIAS_TO_FIELD}
        # two known titles, or a row made only of titles, is a header and not a contact
        if len(known) >= 2 or (known and known == titles) or (wanted and wanted <= titles):
            return i
    raise ImportFailed("no header row found in the first 10 rows (looked for Email/邮箱, "
                       "Company/公司, Phone/电话 ...); name the columns with --map col=field")


def _cell(cells: Sequence[str], mapping: Mapping[str, list[int]], fld: str, sep: str = " ") -> str:
    return sep.join(unneutralise(cells[i]) for i in mapping.get(fld, ())
                    if i < len(cells) and cells[i]).strip()


def validate_row(line: int, cells: Sequence[str], mapping: Mapping[str, list[int]],
                 rules: RowRules) -> ImportRecord | InvalidRow:
    """A clean record, or the first reason the row cannot be imported."""
    try:
        _check_lengths(cells, mapping)
        return _record(line, cells, mapping, rules)
    except RowProblem as exc:
        return InvalidRow(line, str(exc), exc.column, exc.why, exc.details)
    except ValueError as exc:
        return InvalidRow(line, str(exc))


def _check_lengths(cells: Sequence[str], mapping: Mapping[str, list[int]]) -> None:
    for fld, limit in FIELD_LIMITS.items():
        for i in mapping.get(fld, ()):
            if i < len(cells) and len(cells[i]) > limit:
                raise RowProblem("too_long", fld, field=fld, length=len(cells[i]), limit=limit)


def _record(line: int, cells: Sequence[str], mapping: Mapping[str, list[int]],
            rules: RowRules) -> ImportRecord:
    country_text = _cell(cells, mapping, "country")
    country = country_code(country_text) if country_text else None  # unknown: no region hint
    emails = _emails(_cell(cells, mapping, "email", ";"))
    if own := next((e for e in emails if _at_own_domain(e, rules.own_domains)), None):
        raise RowProblem("own_domain", "email", email=own)
    phones = _phones(_cell(cells, mapping, "phone", ";"), country)
    company = _cell(cells, mapping, "company")
    if not emails and not (phones and company_key(company)):
        raise RowProblem("no_key")
    status_text = _cell(cells, mapping, "status")
    try:
        status = parse_status(status_text) if status_text else None
    except RegistryError:
        raise RowProblem("bad_status", "status", value=status_text) from None
    return ImportRecord(line, emails, phones, company, _cell(cells, mapping, "name"), country,
                        _owner(_cell(cells, mapping, "owner"), rules),
                        _cell(cells, mapping, "source") or rules.source, status,
                        _cell(cells, mapping, "reason"), _aliases(company, _cell(cells, mapping, "aliases", "\n")))


def _aliases(company: str, cell: str) -> tuple[str, ...]:
    """The alias column's names and a bracketed second name in the company cell, each
    different from the company itself; one over 300 characters is refused, like the company."""
    own = company_key(company)
    names = [*company_names(company)[1:], *split_aliases(cell)]
    for name in names:
        if len(name) > FIELD_LIMITS["company"]:
            raise RowProblem("alias_too_long", "aliases", name=name[:20], length=len(name),
                             limit=FIELD_LIMITS["company"])
    keyed = {company_key(n): n for n in reversed(names) if company_key(n) not in ("", own)}
    return tuple(reversed(keyed.values()))


def _emails(text: str) -> tuple[str, ...]:
    found = [e.strip().strip("<>").lower() for e in _EMAIL_SPLIT.split(text) if e.strip()]
    for email in found:
        if not _EMAIL.match(email):
            raise RowProblem("bad_email", "email", email=email)
    return tuple(dict.fromkeys(found))


def _at_own_domain(email: str, own_domains: frozenset[str]) -> bool:
    host = email.rpartition("@")[2]
    return any(host == d or host.endswith("." + d) for d in own_domains)


def _phones(text: str, country: str | None) -> tuple[str, ...]:
    result: list[str] = []
    for raw in (p.strip() for p in _PHONE_SPLIT.split(text)):
        if not raw:
            continue
        phone = normalise_phone(raw, country)
        if phone is None:
            raise RowProblem("bad_phone" if country else "bad_national_phone", "phone", raw=raw)
        result.append(phone.e164)
    return tuple(dict.fromkeys(result))


def _owner(text: str, rules: RowRules) -> str | None:
    if not text:
        return rules.default_owner
    rep = rules.owner_aliases.get(fold(text).strip())
    if rep is None:
        raise RowProblem("unknown_owner", "owner", owner=text)
    return rep


def record_keys(record: ImportRecord, free_mail_domains: frozenset[str]) -> SenderKeys:
    domains = (corporate_domain(e, free_mail_domains) for e in record.emails)
    keys = [company_key(record.company), *(company_key(a) for a in record.aliases)]
    return SenderKeys(emails=record.emails, domains=tuple(dict.fromkeys(d for d in domains if d)),
                      phones=record.phones, company_keys=tuple(dict.fromkeys(k for k in keys if k)))


def import_file(session: Session, path: Path, *, source: str, owner_aliases: Mapping[str, str],
                free_mail_domains: frozenset[str], now: datetime, owner: str | None = None,
                on_duplicate: str = "update", dry_run: bool = False,
                mapping: Mapping[str, str] | None = None,
                progress: ProgressCallback | None = None,
                own_domains: frozenset[str] = frozenset()) -> ImportResult:
    """Import one CSV/XLSX file in the session's transaction; the caller commits.
    A row naming an address at one of `own_domains` is refused with the reason.

    Rows are read, checked and written a chunk at a time, so memory does not grow with the
    file. With `dry_run` everything is checked and counted, then rolled back.
    """
    if on_duplicate not in ("update", "skip"):
        raise ImportFailed(f"on_duplicate must be update or skip, not {on_duplicate!r}")
    try:
        return _import_rows(session, Path(path), RowRules(owner_aliases, owner, source, own_domains),
                            free_mail_domains, now, on_duplicate == "skip", dry_run, mapping,
                            progress)
    except TableError as exc:
        session.rollback()
        raise ImportFailed(f"{path}: {exc}") from None


def _import_rows(session: Session, path: Path, rules: RowRules, free_mail_domains: frozenset[str],
                 now: datetime, skip: bool, dry_run: bool, mapping: Mapping[str, str] | None,
                 progress: ProgressCallback | None) -> ImportResult:
    header, columns, body = open_table(path, mapping)
    result = ImportResult(dry_run=dry_run, columns={
        f: [header[i] for i in idx] for f, idx in columns.items()})
    batch = Batch(session, free_mail_domains, now, skip, result)
    done = 0
    with session.no_autoflush:
        for chunk in _chunks(body, CHUNK):
            records = [validate_row(n, c, columns, rules) for n, c in chunk]
            for bad in (r for r in records if isinstance(r, InvalidRow)):
                result.invalid_total += 1
                if len(result.invalid) < LISTED:
                    result.invalid.append(bad)
            batch.apply([r for r in records if isinstance(r, ImportRecord)])
            done += len(chunk)
            if progress:
                progress(done)
    if dry_run:
        session.rollback()
    return result


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def open_table(path: Path, mapping: Mapping[str, str] | None,
               ) -> tuple[list[str], dict[str, list[int]], Iterator[Row]]:
    """The header, the field -> columns mapping and the data rows (lazily); fails if none is usable."""
    rows = read_rows(path)
    first = list(itertools.islice(rows, 10))  # where find_header looks
    if not first:
        raise ImportFailed(f"{path} has no rows")
    head = find_header(first, mapping)
    header = first[head][1]
    columns = detect_mapping(header, mapping)
    if "email" not in columns and not {"phone", "company"} <= set(columns):
        raise ImportFailed(f"no Email column, nor Company and Phone columns, among "
                           f"{header}; name them with --map col=field")
    return header, columns, itertools.chain(first[head + 1:], rows)


EXPORT_HEADER = ("Company", "Name", "Email", "Phone", "Country", "Owner", "Status", "Reason",
                 "Source", "Aliases")


def export_csv(session: Session, out: TextIO) -> int:
    """Write every customer as one CSV row that `import_file` reads back; returns the count.

    Cells are neutralised (spreadsheet.neutralise) and every cell is quoted, so a separator inside a
    cell can never start a new, unneutralised one (the OWASP CSV-injection rule).
    """
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(EXPORT_HEADER)
    query = (select(CustomerRow).order_by(CustomerRow.id)
             .options(selectinload(CustomerRow.emails), selectinload(CustomerRow.phones),
                      selectinload(CustomerRow.aliases))
             .execution_options(yield_per=1000))
    count = 0
    for row in session.scalars(query):
        writer.writerow(export_cells(row))
        count += 1
    return count


def export_cells(row: CustomerRow) -> list[str]:
    cells = (row.company, row.contact_name, "; ".join(sorted(e.email for e in row.emails)),
             "; ".join(sorted(p.e164 for p in row.phones)), row.country or "", row.owner or "",
             row.status, row.status_reason, row.source, "; ".join(a.alias for a in row.aliases))
    return [neutralise(strip_controls(c)) for c in cells]
