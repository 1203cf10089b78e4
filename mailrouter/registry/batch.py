"""The working state of one import chunk: which emails, domains and phones are already claimed.

Keys are fetched from the database a chunk at a time (IN queries on the unique and e164
indexes) and kept in dictionaries together with those of customers created earlier in the
same chunk; each chunk is flushed and then forgotten, so earlier chunks are found in the
database (same transaction) and memory does not grow with the file. match.first_hit sees the
registry and the file as one.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailrouter.registry.match import SenderKeys, aliases_of, first_hit, name_labels
from mailrouter.registry.models import (CustomerAliasRow, CustomerDomainRow, CustomerEmailRow,
                                        CustomerPhoneRow, CustomerRow, OwnerHistoryRow)
from mailrouter.registry.normalise import company_key

if TYPE_CHECKING:
    from mailrouter.registry.importer import ImportRecord, ImportResult


class Batch:
    def __init__(self, session: Session, free_mail_domains: frozenset[str], now: datetime,
                 skip: bool, result: ImportResult):
        self.session, self.free, self.now, self.skip, self.result = (
            session, free_mail_domains, now, skip, result)
        # Customer refs: database ids, or negative numbers for customers created by this import
        # (they have no id until the next flush, and first_hit only passes refs along).
        self.rows: dict[int, CustomerRow] = {}
        self.emails: dict[str, int] = {}
        self.domains: dict[str, int] = {}
        self.phones: dict[str, list[tuple[int, dict[str, str]]]] = {}  # e164 -> (ref, name labels)
        self._asked: set[tuple[str, str]] = set()  # (kind, key) already looked up in the database
        self._next_new = -1

    def apply(self, records: Sequence[ImportRecord]) -> None:
        from mailrouter.registry.importer import record_keys

        keys = [record_keys(r, self.free) for r in records]
        self._prefetch(keys)
        for record, k in zip(records, keys):
            hit = first_hit(k, self.emails.get, self.domains.get,
                            lambda e164: self.phones.get(e164, ()))
            if hit is None:
                self._create(record, k)
                self.result.created += 1
            elif self.skip:
                self.result.skipped += 1
            elif self._merge(hit.customer_id, record, k):
                self.result.updated += 1
            else:
                self.result.unchanged += 1
        self.session.flush()
        self._forget()

    def _forget(self) -> None:
        """Drop this chunk's objects and keys: the flushed rows answer the next chunk's queries."""
        for row in self.rows.values():
            self.session.expunge(row)
        self.rows.clear()
        self.emails.clear()
        self.domains.clear()
        self.phones.clear()
        self._asked.clear()

    def _new_keys(self, kind: str, values: Iterable[str]) -> list[str]:
        fresh = [v for v in dict.fromkeys(values) if (kind, v) not in self._asked]
        self._asked.update((kind, v) for v in fresh)
        return fresh

    def _prefetch(self, keys: Sequence[SenderKeys]) -> None:
        s = self.session
        if emails := self._new_keys("email", (e for k in keys for e in k.emails)):
            self.emails.update(s.execute(select(CustomerEmailRow.email, CustomerEmailRow.customer_id)
                                         .where(CustomerEmailRow.email.in_(emails))).all())
        if domains := self._new_keys("domain", (d for k in keys for d in k.domains)):
            self.domains.update(s.execute(
                select(CustomerDomainRow.domain, CustomerDomainRow.customer_id)
                .where(CustomerDomainRow.domain.in_(domains))).all())
        if phones := self._new_keys("phone", (p for k in keys for p in k.phones)):
            rows = s.execute(select(CustomerPhoneRow.e164, CustomerPhoneRow.customer_id,
                                    CustomerRow.company, CustomerRow.company_key)
                             .join(CustomerRow, CustomerRow.id == CustomerPhoneRow.customer_id)
                             .where(CustomerPhoneRow.e164.in_(phones))).all()
            aliases = aliases_of(s, {cid for _, cid, _, _ in rows})
            for e164, cid, company, key in rows:
                self.phones.setdefault(e164, []).append(
                    (cid, name_labels(company, key, aliases.get(cid, ()))))
        self._load_rows()

    def _load_rows(self) -> None:
        """Customers the chunk may hit, with their contact points, in one query."""
        refs = {*self.emails.values(), *self.domains.values(),
                *(ref for hits in self.phones.values() for ref, _ in hits)}
        wanted = [ref for ref in refs if ref > 0 and ref not in self.rows]
        if wanted:
            query = (select(CustomerRow).where(CustomerRow.id.in_(wanted))
                     .options(selectinload(CustomerRow.emails), selectinload(CustomerRow.domains),
                              selectinload(CustomerRow.phones), selectinload(CustomerRow.aliases)))
            self.rows.update((row.id, row) for row in self.session.scalars(query))

    def _create(self, record: ImportRecord, keys: SenderKeys) -> None:
        row = CustomerRow(company=record.company, company_key=company_key(record.company),
                          contact_name=record.name, country=record.country, owner=record.owner,
                          status=record.status or "active", status_reason=record.reason,
                          source=record.source, first_seen=self.now, last_contact=self.now,
                          owner_since=self.now)
        self.session.add(row)
        ref, self._next_new = self._next_new, self._next_new - 1
        self.rows[ref] = row
        self._add_aliases(row, record.aliases)
        self._claim(ref, row, keys)
        if record.owner:
            self.session.add(OwnerHistoryRow(customer=row, from_rep=None, to_rep=record.owner,
                                             at=self.now, reason=f"imported from {record.source}"))

    def _claim(self, ref: int, row: CustomerRow, keys: SenderKeys) -> bool:
        """Give the customer the keys nobody has yet; True if any was new."""
        changed = False
        for email in keys.emails:
            if email not in self.emails:
                row.emails.append(CustomerEmailRow(email=email))
                self.emails[email], changed = ref, True
        for domain in keys.domains:
            if domain not in self.domains:
                row.domains.append(CustomerDomainRow(domain=domain))
                self.domains[domain], changed = ref, True
        have = {p.e164 for p in row.phones}
        labels = name_labels(row.company, row.company_key, ((a.alias, a.alias_key) for a in row.aliases))
        for e164 in keys.phones:
            if e164 not in have:
                row.phones.append(CustomerPhoneRow(e164=e164))
                self.phones.setdefault(e164, []).append((ref, labels))
                changed = True
        return changed

    @staticmethod
    def _add_aliases(row: CustomerRow, aliases: Iterable[str]) -> bool:
        """Add the names the customer is not yet known by; True if any was new."""
        have = {row.company_key, *(a.alias_key for a in row.aliases)}
        added = False
        for alias in aliases:
            if (key := company_key(alias)) and key not in have:
                row.aliases.append(CustomerAliasRow(alias=alias, alias_key=key))
                have.add(key)
                added = True
        return added

    def _merge(self, ref: int, record: ImportRecord, keys: SenderKeys) -> bool:
        """Fill in what the registry lacks; never take a customer from its owner."""
        row = self.rows[ref]
        changed = self._add_aliases(row, record.aliases)
        changed |= self._claim(ref, row, keys)
        for attr, value in (("company", record.company), ("contact_name", record.name),
                            ("country", record.country)):
            if value and not getattr(row, attr):
                setattr(row, attr, value)
                changed = True
        if record.company and not row.company_key:
            row.company_key = company_key(record.company)
        changed |= self._merge_owner(row, record)
        if record.status and (record.status, record.reason) != (row.status, row.status_reason):
            row.status, row.status_reason, changed = record.status, record.reason, True
        return changed

    def _note(self, note: str) -> None:
        from mailrouter.registry.importer import LISTED

        self.result.notes_total += 1
        if len(self.result.notes) < LISTED:
            self.result.notes.append(note)

    def _merge_owner(self, row: CustomerRow, record: ImportRecord) -> bool:
        if not record.owner or record.owner == row.owner:
            return False
        if row.owner:
            self._note(f"line {record.line}: {row.company or 'customer'} kept by "
                       f"{row.owner} (the file says {record.owner})")
            return False
        self.session.add(OwnerHistoryRow(customer=row, from_rep=None, to_rep=record.owner,
                                         at=self.now, reason=f"imported from {record.source}"))
        row.owner, row.owner_since = record.owner, self.now
        return True
