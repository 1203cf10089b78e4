"""What a sender can be recognised by: pure, so the parser process computes it beside the parse
(it imports no database code)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from mailrouter.model import Inquiry
from mailrouter.parse.domain import host_of, is_free_mail, registered_domain
from mailrouter.registry.normalise import company_candidates, company_key, company_names, extract_phones

_TAIL_LINES = 15  # a signature the parser missed is usually in the body's last lines


@dataclass(frozen=True)
class SenderKeys:
    """Everything a customer can be recognised by; empty parts simply never match."""

    emails: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()  # corporate registered domains only
    phones: tuple[str, ...] = ()  # E.164
    company_keys: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()  # registered domains of web sites named in the signature


_SITE = re.compile(r"(?:https?://|\bwww\.)([\w.-]+\.[^\W\d_]{2,})", re.IGNORECASE)


def corporate_domain(address: str, free_mail_domains: frozenset[str]) -> str | None:
    host = host_of(address)
    if not host or "@" not in address or is_free_mail(host, free_mail_domains):
        return None
    return registered_domain(host)


def inquiry_keys(inquiry: Inquiry, free_mail_domains: frozenset[str]) -> SenderKeys:
    sender = inquiry.sender.strip().lower()
    domain = None if inquiry.free_mail else corporate_domain(sender, free_mail_domains)
    tail = "\n".join(inquiry.text.splitlines()[-_TAIL_LINES:])
    phones = extract_phones(inquiry.signature + "\n" + tail, inquiry.country)
    names = company_candidates(inquiry.signature, inquiry.company, tail)
    keys = (company_key(part) for n in names if n for part in company_names(n))
    ours = {registered_domain(host_of(r)) for r in inquiry.recipients}
    sites = [d for d in signature_sites(inquiry.signature + "\n" + tail, free_mail_domains)
             if d not in ours and d != domain]
    return SenderKeys(emails=(sender,) if sender else (), domains=(domain,) if domain else (),
                      phones=tuple(p.e164 for p in phones),
                      company_keys=tuple(dict.fromkeys(k for k in keys if k)),
                      sites=tuple(sites))


def signature_sites(text: str, free_mail_domains: frozenset[str]) -> tuple[str, ...]:
    """Registered domains of the web sites a signature names ("www.acme.de", "https://acme.de/")."""
    found = (registered_domain(m.group(1).lower().rstrip(".")) for m in _SITE.finditer(text))
    return tuple(dict.fromkeys(d for d in found if d and not is_free_mail(d, free_mail_domains)))
