"""Registered domain and country of an address, from tldextract's bundled suffix list only."""
from __future__ import annotations

import functools
import re

import tldextract

# ccTLDs that are marketed worldwide as generic names: alone they say nothing about the
# sender's country (under a second-level suffix such as com.co they still do).
_VANITY_CCTLDS = frozenset({"io", "co", "me", "tv", "ai", "cc", "ws", "fm", "to", "gg", "ly"})
# Two-letter TLDs whose ISO 3166 code differs, or that name no single country.
_TLD_TO_ISO: dict[str, str | None] = {"uk": "GB", "su": "RU", "eu": None, "ac": None}
# A few internationalised ccTLDs our buyers use.
_IDN_TLDS = {"xn--p1ai": "RU", "xn--fiqs8s": "CN", "xn--fiqz9s": "CN", "xn--j6w193g": "HK",
             "xn--kprw13d": "TW", "xn--kpry57d": "TW", "xn--3e0b707e": "KR", "xn--p1acf": "RU"}
_IP_LITERAL = re.compile(r"^\[?[0-9a-f:.]+\]?$")


@functools.cache
def extractor() -> tldextract.TLDExtract:
    """Built once: no suffix-list download, no cache directory, private suffixes included.

    Private suffixes (spb.ru, blogspot.com) keep unrelated companies from merging into one domain.
    """
    return new_extractor()


def new_extractor() -> tldextract.TLDExtract:
    return tldextract.TLDExtract(
        suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
    )


def host_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(".").lower()


def registered_domain(host: str) -> str:
    """"acme.co.uk" for "sales.acme.co.uk"; the host itself when it has no public suffix."""
    if not host or _IP_LITERAL.match(host):
        return host
    try:
        result = extractor()(host)
    except Exception:  # tldextract rejects some malformed hosts (bad IDNA); keep the raw host
        return host
    return result.top_domain_under_public_suffix or host


def country_of(host: str) -> str | None:
    """ISO alpha-2 country of a host's ccTLD, or None for generic and vanity TLDs."""
    if not host or _IP_LITERAL.match(host):
        return None
    try:
        suffix = extractor()(host).suffix
    except Exception:
        return None
    labels = suffix.split(".") if suffix else []
    if not labels:
        return None
    tld = labels[-1]
    if tld in _IDN_TLDS:
        return _IDN_TLDS[tld]
    if len(tld) != 2 or not tld.isalpha() or (tld in _VANITY_CCTLDS and len(labels) == 1):
        return None
    return _TLD_TO_ISO.get(tld, tld.upper())


def is_free_mail(host: str, free_domains: frozenset[str]) -> bool:
    """True when the host, or its registered domain, is a free-mail provider.

    Entries may be "name.*" to mean the provider under any public suffix (yahoo.*).
    """
    if not host:
        return False
    domain = registered_domain(host)
    if host in free_domains or domain in free_domains:
        return True
    brand = domain.partition(".")[0]
    return f"{brand}.*" in free_domains
