"""Registered domains, countries and free mail, from tldextract's bundled snapshot only."""
from __future__ import annotations

import socket

import pytest
import tldextract.cache

from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS
from mailrouter.parse.domain import country_of, is_free_mail, new_extractor, registered_domain


@pytest.mark.parametrize(
    ("host", "country"),
    [("acme.de", "DE"), ("foo.com.br", "BR"), ("sales.bar.co.uk", "GB"), ("x.spb.ru", "RU"),
     ("acme.com", None), ("acme.org", None), ("startup.io", None), ("acme.eu", None),
     ("empresa.com.co", "CO"), ("localhost", None), ("10.0.0.1", None)],
)
def test_country_from_cctld(host: str, country: str | None) -> None:
    assert country_of(host) == country


@pytest.mark.parametrize(
    ("host", "registered"),
    [("sales.bar.co.uk", "bar.co.uk"), ("x.spb.ru", "x.spb.ru"), ("mail.y.ru", "y.ru"),
     ("a.blogspot.com", "a.blogspot.com"), ("localhost", "localhost")],
)
def test_registered_domain_counts_private_suffixes(host: str, registered: str) -> None:
    assert registered_domain(host) == registered


def test_two_companies_under_a_private_suffix_stay_apart() -> None:
    assert registered_domain("mail.x.spb.ru") != registered_domain("mail.z.spb.ru")


@pytest.mark.parametrize(
    ("host", "free"),
    [("gmail.com", True), ("mail.ru", True), ("yahoo.co.jp", True), ("163.com", True),
     ("acme.de", False), ("gmail.com.evil.de", False)],
)
def test_free_mail(host: str, free: bool) -> None:
    assert is_free_mail(host, DEFAULT_FREE_MAIL_DOMAINS) is free


def test_free_mail_wildcard_entry_matches_any_suffix() -> None:
    assert is_free_mail("yahoo.com.pe", frozenset({"yahoo.*"}))
    assert not is_free_mail("yahoofans.com", frozenset({"yahoo.*"}))


def test_extractor_uses_no_network_and_writes_no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("tldextract tried the network")

    def refuse_write(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("tldextract tried to write its cache")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(tldextract.cache.DiskCache, "set", refuse_write)
    result = new_extractor()("shop.x.spb.ru")  # first use of a fresh extractor loads the list
    assert result.top_domain_under_public_suffix == "x.spb.ru"
