"""Writes to the registry: a routed inquiry, owner changes, status. The caller commits."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from mailrouter.model import Inquiry
from mailrouter.parse.domain import registered_domain
from mailrouter.registry.match import SenderKeys, SenderLookup, find_hit, inquiry_keys, is_lapsed
from mailrouter.registry.models import (ACTIVE, BLOCKED, STATUSES, CustomerAliasRow, CustomerDomainRow,
                                        CustomerEmailRow, CustomerPhoneRow, CustomerRow,
                                        InquiryHistoryRow, OwnerHistoryRow)
from mailrouter.registry.normalise import company_candidates, company_key, company_names, has_legal_form
from mailrouter.store import inserted_id, table_of


class RegistryError(Exception):
    """A registry command that cannot be done as asked (unknown customer, bad status...)."""


@dataclass(frozen=True)
class Recorded:
    customer_id: int
    created: bool


def record_routed(session: Session, inquiry: Inquiry, rep_id: str, now: datetime,
                  source: str = "Email", *, message_row: int | None = None,
                  quiet_days: int = 180, reason: str = "", looked_up: SenderLookup | None = None,
                  learn_aliases: bool = False) -> Recorded:
    """Remember an inquiry routed to `rep_id`: a new customer, or the history of a known one.

    When a known customer reaches someone other than its owner (lapsed ownership, owner away)
    the change is recorded as a handover with `reason`. `looked_up`: the lookup already made
    for this inquiry in this transaction. `learn_aliases` (a manager assigned it by hand): the
    company names the mail signs with become the customer's aliases.
    """
    if looked_up is None:
        # The parse stage already decided free vs corporate (inquiry.free_mail): no list needed.
        keys = inquiry_keys(inquiry, frozenset())
        hit = find_hit(session, keys)
    else:
        keys, hit = looked_up.keys, looked_up.hit
    if hit is None:
        created = _new_customer(session, inquiry, keys, rep_id, now, source, message_row)
        if learn_aliases:
            learn_names(session.get_one(CustomerRow, created), inquiry)
        return Recorded(created, True)
    row = session.get_one(CustomerRow, hit.customer_id)
    if learn_aliases:
        learn_names(row, inquiry)
    if row.owner != rep_id:
        lapsed = is_lapsed(row.last_contact, now, quiet_days)
        handover(session, row.id, rep_id,
                 reason or ("ownership lapsed" if lapsed else f"inquiry routed to {rep_id}"), now)
    add_contact_points(session, row, keys)
    _add_inquiry(session, row, inquiry, rep_id, now, message_row)
    return Recorded(row.id, False)


# Built once: constructing a statement per inquiry cost more than executing it.
_INSERT = {table: insert(table_of(table)) for table in (
    CustomerRow, CustomerEmailRow, CustomerDomainRow, CustomerPhoneRow, OwnerHistoryRow, InquiryHistoryRow)}


def _new_customer(session: Session, inquiry: Inquiry, keys: SenderKeys, rep_id: str,
                  now: datetime, source: str, message_row: int | None) -> int:
    """Insert a customer with its contact points and history; its id.

    Plain INSERTs rather than ORM objects: this runs for most routed inquiries of a backlog,
    and the unit of work cost several times the statements themselves (issue 7).
    """
    company = inquiry.company or _signature_company(inquiry.signature)
    customer_id = inserted_id(session.connection().execute(_INSERT[CustomerRow], dict(
        company=company, company_key=company_key(company), contact_name=inquiry.sender_name,
        country=inquiry.country, owner=rep_id, source=source, first_seen=now, last_contact=now,
        owner_since=now, last_inquiry=now)))
    # find_hit just found none of these addresses and domains: no one has claimed them
    for table, column, values in (
            (CustomerEmailRow, "email", [e for e in keys.emails if e]),
            (CustomerDomainRow, "domain", [d for d in keys.domains if d]),
            (CustomerPhoneRow, "e164", list(dict.fromkeys(keys.phones)))):
        if values:
            session.execute(_INSERT[table], [{"customer_id": customer_id, column: v} for v in values])
    session.execute(_INSERT[OwnerHistoryRow], dict(
        customer_id=customer_id, from_rep=None, to_rep=rep_id, at=now, reason=f"first inquiry ({source})"))
    session.execute(_INSERT[InquiryHistoryRow], _history(customer_id, inquiry, rep_id, now, message_row))
    return customer_id


def _history(customer_id: int, inquiry: Inquiry, rep_id: str, now: datetime, message_row: int | None) -> dict:
    return dict(customer_id=customer_id, message_row=message_row, message_id=inquiry.message_id,
                sender=inquiry.sender, subject=inquiry.subject[:500], at=now, rep=rep_id)


def _signature_company(signature: str) -> str:
    """Only a line carrying a legal form (Ltd, GmbH, 有限公司) is trusted as a new company."""
    return next((ln for ln in company_candidates(signature) if has_legal_form(ln)), "")


def learn_names(row: CustomerRow, inquiry: Inquiry) -> list[str]:
    """Add as aliases the company names the mail signs with that the customer lacks.

    Only lines with a legal form (or a form's Company field) count: "Best regards" must not
    become a name. Returns the names added.
    """
    names = [inquiry.company or "", *(n for n in company_candidates(inquiry.signature) if has_legal_form(n))]
    have = {row.company_key, *(a.alias_key for a in row.aliases)}
    added = []
    for name in (part for n in names if n for part in company_names(n)):
        if (key := company_key(name)) and key not in have and len(name) <= 300:
            row.aliases.append(CustomerAliasRow(alias=name, alias_key=key))
            have.add(key)
            added.append(name)
    if not row.company and added:
        row.company, row.company_key = added[0], company_key(added[0])
    return added


def add_contact_points(session: Session, row: CustomerRow, keys: SenderKeys) -> None:
    """Add emails, domains and phones this customer lacks and nobody else has claimed."""
    with session.no_autoflush:
        for email in keys.emails:
            if email and session.scalar(select(CustomerEmailRow.id)
                                        .where(CustomerEmailRow.email == email)) is None:
                row.emails.append(CustomerEmailRow(email=email))
        for domain in keys.domains:
            if domain and session.scalar(select(CustomerDomainRow.id)
                                         .where(CustomerDomainRow.domain == domain)) is None:
                row.domains.append(CustomerDomainRow(domain=domain))
        have = {p.e164 for p in row.phones}
        for e164 in dict.fromkeys(keys.phones):
            if e164 not in have:
                row.phones.append(CustomerPhoneRow(e164=e164))


def _add_inquiry(session: Session, row: CustomerRow, inquiry: Inquiry, rep_id: str,
                 now: datetime, message_row: int | None) -> None:
    row.last_inquiry = now
    row.last_contact = now
    session.add(InquiryHistoryRow(**_history(row.id, inquiry, rep_id, now, message_row)))


def handover(session: Session, customer_id: int, to_rep: str, reason: str,
             now: datetime) -> None:
    """Give a customer to another rep; the quiet period starts again from now."""
    row = session.get(CustomerRow, customer_id)
    if row is None:
        raise RegistryError(f"no customer #{customer_id}")
    session.add(OwnerHistoryRow(customer_id=row.id, from_rep=row.owner, to_rep=to_rep,
                                at=now, reason=reason))
    row.owner, row.owner_since, row.last_contact = to_rep, now, now
    session.flush()


def transfer(session: Session, from_rep: str, to_rep: str, now: datetime) -> int:
    """Every customer of `from_rep` goes to `to_rep` (a rep leaves); returns how many."""
    if from_rep == to_rep:
        raise RegistryError("--from and --to are the same rep")
    ids = session.scalars(select(CustomerRow.id).where(CustomerRow.owner == from_rep)).all()
    for cid in ids:
        handover(session, cid, to_rep, f"transfer from {from_rep}", now)
    return len(ids)


def parse_status(value: str) -> str:
    status = value.strip().lower().replace("-", "_").replace(" ", "_")
    if status not in STATUSES:
        raise RegistryError(f"unknown status {value!r} (use active, rejected, do-not-contact or blocked)")
    return status


def set_status(session: Session, key: str, status: str, reason: str = "") -> CustomerRow:
    """Set the status of the one customer that `key` (address, domain, company) names."""
    row = find_customer(session, key)
    row.status = parse_status(status)
    row.status_reason = reason if row.status != ACTIVE else ""
    session.flush()
    return row


def block_sender(session: Session, address: str, reason: str, now: datetime) -> None:
    """Ignore a sender's mail from now on: their customer row (or a new, unowned one) is blocked.

    Only the address: a free-mail or shared domain must not take innocent senders with it.
    """
    address = address.strip().lower()
    cid = session.scalar(select(CustomerEmailRow.customer_id).where(CustomerEmailRow.email == address))
    row = session.get(CustomerRow, cid) if cid else None
    if row is None:
        row = CustomerRow(company="", company_key="", owner=None, source="blocked by a manager",
                          first_seen=now, last_contact=now, owner_since=now)
        session.add(row)
        session.add(CustomerEmailRow(customer=row, email=address))
    row.status, row.status_reason = BLOCKED, reason
    session.flush()


def find_customer(session: Session, key: str) -> CustomerRow:
    """The customer named by an email address, a domain or a company name; exactly one."""
    text = key.strip().lower()
    if "@" in text:
        cid = session.scalar(select(CustomerEmailRow.customer_id)
                             .where(CustomerEmailRow.email == text))
        return _one(session, [cid] if cid else [], key)
    cid = session.scalar(select(CustomerDomainRow.customer_id)
                         .where(CustomerDomainRow.domain == registered_domain(text)))
    if cid is not None:
        return _one(session, [cid], key)
    wanted = company_key(key)
    ids = session.scalars(select(CustomerRow.id).where(CustomerRow.company_key == wanted)).all()
    aliased = session.scalars(select(CustomerAliasRow.customer_id)
                              .where(CustomerAliasRow.alias_key == wanted)).all()
    return _one(session, list(dict.fromkeys([*ids, *aliased])), key)


def _one(session: Session, ids: list[int], key: str) -> CustomerRow:
    if not ids:
        raise RegistryError(f"no customer matches {key!r}")
    if len(ids) > 1:
        raise RegistryError(f"{len(ids)} customers match {key!r} (customer ids "
                            f"{', '.join(map(str, ids[:10]))}); use an email address")
    return session.get_one(CustomerRow, ids[0])

