"""The buyer's country, with the evidence that decided it.

Kinds of evidence, strongest first (CONFIDENCE); this order is documented in README:

  form      a labelled "Country:" field (web forms, platforms)        0.95
  cctld     the ccTLD of a corporate sender domain (acme.es)            0.90
  phone     a +CC phone number in the signature or the last lines       0.80
  name      a country name there ("España", "Россия", "德国")           0.70
  city      a major city there ("Sevilla", "Москва", "上海")            0.60
  cctld     the ccTLD of a free-mail provider (yahoo.co.uk, web.de)     0.50
  language  the language, where it is spoken mainly in one country    0.15-0.25

A corporate ccTLD (or a form field) decides alone: signatures are read only for free-mail and
generic (.com) senders, which keeps the parser fast. Otherwise every kind found counts once per
country: a country's confidence is 1 - prod(1 - c) over its kinds, the most confident country
wins (ties: the strongest single piece of evidence), and evidence for another country lowers
the winner's confidence by half that country's.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers

from mailrouter.parse.places import find_places

CONFIDENCE = {"form": 0.95, "cctld": 0.90, "phone": 0.80, "name": 0.70, "city": 0.60,
              "free-mail cctld": 0.50}
# Languages spoken mainly in one country: a weak hint, for when nothing else is known.
LANGUAGE_COUNTRY: dict[str, tuple[str, float]] = {
    "ja": ("JP", 0.25), "ko": ("KR", 0.25), "tr": ("TR", 0.25), "pl": ("PL", 0.25),
    "it": ("IT", 0.25), "zh-TW": ("TW", 0.25), "uk": ("UA", 0.25), "el": ("GR", 0.25),
    "th": ("TH", 0.25), "he": ("IL", 0.25), "ru": ("RU", 0.15), "de": ("DE", 0.15),
    "fr": ("FR", 0.15), "zh": ("CN", 0.15),
}
TAIL_LINES = 8  # signatures that the splitter missed are at the end of the body
CLUE_CHARS = 2_000  # a signature is a few lines: hostile megabyte "signatures" are cut here
_INTERNATIONAL_00 = re.compile(r"(?<![\w+])00(?=\s?[1-9])")


@dataclass(frozen=True)
class Evidence:
    country: str
    kind: str  # a key of CONFIDENCE, or "language"
    detail: str  # "phone +34 in signature", "'España' in signature"
    confidence: float


@dataclass(frozen=True)
class Country:
    code: str | None
    confidence: float
    source: str | None  # the kind of the strongest evidence for `code`, "cctld" for both cctlds
    evidence: str  # "phone +34 in signature; 'España' in signature"


NO_COUNTRY = Country(None, 0.0, None, "")


@dataclass(frozen=True)
class Clues:
    """What parse_message knows that bears on the country."""

    form_country: str | None  # ISO code from a labelled field
    form_label: str  # the field's value as written, for the evidence
    cctld_country: str | None  # from the sender's host
    tld: str  # e.g. "es", for the evidence
    free_mail: bool
    signature: str
    body: str
    language: str | None


def buyer_country(clues: Clues) -> Country:
    """The country and its evidence (see the module docstring for the order)."""
    if clues.form_country:
        return _alone(Evidence(clues.form_country, "form", f"form field Country: {clues.form_label!r}",
                               CONFIDENCE["form"]))
    if clues.cctld_country and not clues.free_mail:
        return _alone(Evidence(clues.cctld_country, "cctld", f"ccTLD .{clues.tld}", CONFIDENCE["cctld"]))
    return resolve(gather(clues))


def _alone(evidence: Evidence) -> Country:
    return Country(evidence.country, evidence.confidence, evidence.kind, evidence.detail)


def gather(clues: Clues) -> list[Evidence]:
    found: list[Evidence] = []
    tail = "\n".join(clues.body[-CLUE_CHARS:].splitlines()[-TAIL_LINES:])[-CLUE_CHARS:]
    for where, text in (("in signature", clues.signature[:CLUE_CHARS]), ("at end of body", tail)):
        if text.strip():
            found += phone_evidence(text, where) + place_evidence(text, where)
    if clues.cctld_country:
        found.append(Evidence(clues.cctld_country, "cctld", f"free-mail ccTLD .{clues.tld}",
                              CONFIDENCE["free-mail cctld"]))
    if clues.language in LANGUAGE_COUNTRY:
        code, confidence = LANGUAGE_COUNTRY[clues.language]
        found.append(Evidence(code, "language", f"language {clues.language}", confidence))
    return found


def phone_evidence(text: str, where: str) -> list[Evidence]:
    """Countries of numbers written with their country code (+34 ..., 0034 ...)."""
    found = []
    for match in phonenumbers.PhoneNumberMatcher(_INTERNATIONAL_00.sub("+", text), "ZZ"):
        region = phonenumbers.region_code_for_number(match.number)
        if region and region != "ZZ":
            detail = f"phone +{match.number.country_code} {where}"
            found.append(Evidence(region, "phone", detail, CONFIDENCE["phone"]))
    return found


def place_evidence(text: str, where: str) -> list[Evidence]:
    return [Evidence(p.country, p.kind, f"{'city ' if p.kind == 'city' else ''}{p.written!r} {where}",
                     CONFIDENCE[p.kind]) for p in find_places(text)]


def resolve(found: list[Evidence]) -> Country:
    """Combine per country, one piece of evidence per kind; see the module docstring."""
    per_country: dict[str, dict[str, Evidence]] = {}
    for e in found:
        kinds = per_country.setdefault(e.country, {})
        if e.kind not in kinds or e.confidence > kinds[e.kind].confidence:
            kinds[e.kind] = e
    if not per_country:
        return NO_COUNTRY
    scored = {code: (_combined(kinds.values()), max(e.confidence for e in kinds.values()))
              for code, kinds in per_country.items()}
    winner = max(scored, key=scored.__getitem__)
    others = [combined for code, (combined, _best) in scored.items() if code != winner]
    confidence = scored[winner][0] * (1 - max(others, default=0.0) / 2)
    evidence = sorted(per_country[winner].values(), key=lambda e: -e.confidence)
    detail = "; ".join(e.detail for e in evidence)
    if others:
        losers = [e.detail for code, kinds in per_country.items() if code != winner for e in kinds.values()]
        detail += f" (against: {'; '.join(losers)})"
    return Country(winner, round(confidence, 2), evidence[0].kind, detail)


def _combined(evidence: Iterable[Evidence]) -> float:
    doubt = 1.0
    for e in evidence:
        doubt *= 1 - e.confidence
    return 1 - doubt
