"""Who is this sender? Email, then corporate domain, then a web site named in the signature,
then a company name (or alias) + phone together.

The order lives in `first_hit`, a pure function over three lookups; `match_sender` backs the
lookups with indexed queries, the importer with dictionaries of a whole batch, so an inquiry
and an imported row are recognised by exactly the same rule.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mailrouter.model import Inquiry
from mailrouter.registry.models import (CustomerAliasRow, CustomerDomainRow, CustomerEmailRow,
                                        CustomerPhoneRow, CustomerRow)
from mailrouter.registry.keys import SenderKeys, inquiry_keys
# the plain data a match yields lives in registry/verdict.py (the decide stage reads it without SQL)
from mailrouter.registry.verdict import (COMPANY_PHONE, DOMAIN, EMAIL, SITE, CustomerSummary,  # noqa: F401
                                         Hit, RegistryMatch)

EmailLookup = Callable[[str], int | None]
DomainLookup = Callable[[str], int | None]
# e164 -> (customer id, {company or alias key: "company 'Acme SL'" / "alias 'Acme Iberica'"})
PhoneLookup = Callable[[str], Iterable[tuple[int, Mapping[str, str]]]]


def first_hit(keys: SenderKeys, by_email: EmailLookup, by_domain: DomainLookup,
              by_phone: PhoneLookup) -> Hit | None:
    for email in keys.emails:
        if (cid := by_email(email)) is not None:
            return Hit(cid, EMAIL, email)
    for domain in keys.domains:
        if (cid := by_domain(domain)) is not None:
            return Hit(cid, DOMAIN, domain)
    for site in keys.sites:  # a buyer writing from gmail still signs with the firm's web site
        if (cid := by_domain(site)) is not None:
            return Hit(cid, SITE, site)
    wanted = [k for k in keys.company_keys if k]
    for phone in keys.phones if wanted else ():
        for cid, names in by_phone(phone):
            # a shared switchboard alone is not enough: a name must agree
            if (key := next((k for k in wanted if k in names), None)) is not None:
                return Hit(cid, COMPANY_PHONE, f"{names[key]} + phone {phone}")
    return None


def name_labels(company: str, company_key: str, aliases: Iterable[tuple[str, str]]) -> dict[str, str]:
    """key -> how to name it in evidence, for a customer's company name and its aliases."""
    labels = {key: f"alias {alias!r}" for alias, key in aliases if key}
    if company_key:
        labels[company_key] = f"company {company!r}"
    return labels


# Built once: constructing a statement per lookup cost as much as running it.
_BY_EMAIL = select(CustomerEmailRow.customer_id).where(CustomerEmailRow.email == bindparam("email"))
_BY_DOMAIN = select(CustomerDomainRow.customer_id).where(CustomerDomainRow.domain == bindparam("domain"))


def db_lookups(session: Session) -> tuple[EmailLookup, DomainLookup, PhoneLookup]:
    """Indexed single-key queries (unique indexes on email and domain, an index on e164)."""
    def by_email(email: str) -> int | None:
        return session.scalar(_BY_EMAIL, {"email": email})

    def by_domain(domain: str) -> int | None:
        return session.scalar(_BY_DOMAIN, {"domain": domain})

    def by_phone(e164: str) -> list[tuple[int, dict[str, str]]]:
        rows = session.execute(
            select(CustomerPhoneRow.customer_id, CustomerRow.company, CustomerRow.company_key)
            .join(CustomerRow, CustomerRow.id == CustomerPhoneRow.customer_id)
            .where(CustomerPhoneRow.e164 == e164)).all()
        aliases = aliases_of(session, [cid for cid, _, _ in rows])
        return [(cid, name_labels(company, key, aliases.get(cid, ()))) for cid, company, key in rows]

    return by_email, by_domain, by_phone


def aliases_of(session: Session, ids: Iterable[int]) -> dict[int, list[tuple[str, str]]]:
    """customer id -> [(alias, alias key)]; one query for the few customers sharing a phone."""
    result: dict[int, list[tuple[str, str]]] = {}
    ids = list(ids)
    if ids:
        for cid, alias, key in session.execute(
                select(CustomerAliasRow.customer_id, CustomerAliasRow.alias, CustomerAliasRow.alias_key)
                .where(CustomerAliasRow.customer_id.in_(ids)).order_by(CustomerAliasRow.id)):
            result.setdefault(cid, []).append((alias, key))
    return result


def find_hit(session: Session, keys: SenderKeys) -> Hit | None:
    return first_hit(keys, *db_lookups(session))


def is_lapsed(last_contact: datetime, now: datetime, quiet_days: int) -> bool:
    return now - last_contact > timedelta(days=quiet_days)


def describe(hit: Hit, owner: str | None) -> str:
    what = {EMAIL: f"same address {hit.detail}", DOMAIN: f"same domain as {hit.detail}",
            SITE: f"web site {hit.detail} in the signature",
            COMPANY_PHONE: f"same company and phone: {hit.detail}"}[hit.how]
    return f"{what}, owned by {owner}" if owner else f"{what}, no owner"


def summary(row: CustomerRow) -> CustomerSummary:
    return CustomerSummary(row.company, row.contact_name, row.country, row.source,
                           row.first_seen, row.last_inquiry, row.last_contact, row.owner_since)


def to_match(hit: Hit, row: CustomerRow, now: datetime, quiet_days: int) -> RegistryMatch:
    lapsed = is_lapsed(row.last_contact, now, quiet_days)
    evidence = describe(hit, row.owner)
    if lapsed:
        evidence += (f"; ownership lapsed: last contact {row.last_contact:%Y-%m-%d}, "
                     f"quiet for more than {quiet_days} days")
    return RegistryMatch(row.id, row.owner, row.status, row.status_reason, hit.how, evidence,
                         lapsed, summary(row), hit.detail)


@dataclass(frozen=True)
class SenderLookup:
    """What the registry knows of a sender, with the keys it looked for (so that recording
    the inquiry afterwards, in the same transaction, does not look again)."""

    keys: SenderKeys
    hit: Hit | None
    match: RegistryMatch | None


def lookup_sender(session: Session, inquiry: Inquiry, free_mail_domains: frozenset[str],
                  now: datetime, quiet_days: int, keys: SenderKeys | None = None) -> SenderLookup:
    """`keys`: inquiry_keys(inquiry, free_mail_domains) when already computed (by the parser)."""
    keys = keys or inquiry_keys(inquiry, free_mail_domains)
    hit = find_hit(session, keys)
    if hit is None:
        return SenderLookup(keys, None, None)
    return SenderLookup(keys, hit, to_match(hit, session.get_one(CustomerRow, hit.customer_id), now, quiet_days))


def match_sender(session: Session, inquiry: Inquiry, free_mail_domains: frozenset[str],
                 now: datetime, quiet_days: int) -> RegistryMatch | None:
    """The registry's customer behind this inquiry, with how we know; reads only."""
    return lookup_sender(session, inquiry, free_mail_domains, now, quiet_days).match
