"""What the registry says about a sender, as plain data: the decide stage reads it without
loading the database layer (registry/match.py finds it, with SQL)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

EMAIL, DOMAIN, SITE, COMPANY_PHONE = "email", "domain", "site", "company+phone"

ACTIVE = "active"
REJECTED = "rejected"
DO_NOT_CONTACT = "do_not_contact"
BLOCKED = "blocked"  # a manager filed their mail as not an inquiry: it is ignored from now on
STATUSES = (ACTIVE, REJECTED, DO_NOT_CONTACT, BLOCKED)


@dataclass(frozen=True)
class Hit:
    customer_id: int
    how: str  # EMAIL | DOMAIN | SITE | COMPANY_PHONE
    detail: str  # the address, domain, or "alias 'Acme Iberica' + phone +34..." that matched


@dataclass(frozen=True)
class CustomerSummary:
    company: str
    contact_name: str
    country: str | None
    source: str
    first_seen: datetime
    last_inquiry: datetime | None
    last_contact: datetime
    owner_since: datetime


@dataclass(frozen=True)
class RegistryMatch:
    customer_id: int
    owner: str | None
    status: str
    status_reason: str
    how: str  # "email" | "domain" | "site" | "company+phone"
    evidence: str  # e.g. "same domain as acme.de, owned by zhang"
    lapsed: bool  # last contact older than the quiet period: the rules decide again
    customer: CustomerSummary
    detail: str = ""  # what matched (Hit.detail), so decide/ can word the evidence for its reader
