"""Routing rules: compiled once from rules/*.toml into an ordered list; first match wins.

Every condition has one shape - `name`, `matches(inquiry)`, `describe(inquiry, language)` - so
a decision can say in words why it fired, in English or Chinese (decide/words.py). Unknown keys, regions, products, reps and teams fail at load
time with the file and key, never in the middle of the night.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Collection
from typing import Any, Protocol

from mailrouter.config.reader import Problem, Reader, read_toml
from mailrouter.decide.words import place, source, words
from mailrouter.model import Inquiry, ProductLine
from mailrouter.parse.countries import country_code
from mailrouter.parse.products import KeywordMatcher


class Condition(Protocol):
    @property
    def name(self) -> str: ...

    def matches(self, inquiry: Inquiry) -> bool: ...

    def describe(self, inquiry: Inquiry, language: str = "en") -> str: ...


@dataclass(frozen=True)
class FieldIn:
    """The inquiry's field (country, language, ...) is one of the listed values."""

    name: str
    values: frozenset[str]
    get: Callable[[Inquiry], str | None]

    def matches(self, inquiry: Inquiry) -> bool:
        value = self.get(inquiry)
        return value is not None and value in self.values

    def describe(self, inquiry: Inquiry, language: str = "en") -> str:
        w = words(language)
        return w["field_in"].format(name=w.get(self.name, self.name), value=self.get(inquiry),
                                    where=w["list"].join(sorted(self.values)))


@dataclass(frozen=True)
class AnyIn:
    """At least one of the inquiry's values (products, recipients) is listed."""

    name: str
    values: frozenset[str]
    get: Callable[[Inquiry], tuple[str, ...]]

    def matches(self, inquiry: Inquiry) -> bool:
        return any(v in self.values for v in self.get(inquiry))

    def describe(self, inquiry: Inquiry, language: str = "en") -> str:
        w = words(language)
        hits = [v for v in self.get(inquiry) if v in self.values]
        return w[self.name].format(hits=w["list"].join(hits))


@dataclass(frozen=True)
class SenderDomain:
    """Exact domain ("acme.de", also matching its subdomains) or suffix (".gov.cn")."""

    name: str
    domains: tuple[str, ...]

    def _hit(self, inquiry: Inquiry) -> str | None:
        host = inquiry.sender.rpartition("@")[2]
        for d in self.domains:
            if d.startswith("."):
                if host.endswith(d):
                    return d
            elif host == d or host.endswith("." + d):
                return d
        return None

    def matches(self, inquiry: Inquiry) -> bool:
        return self._hit(inquiry) is not None

    def describe(self, inquiry: Inquiry, language: str = "en") -> str:
        return words(language)["sender_domain"].format(host=inquiry.sender.rpartition("@")[2],
                                                       hit=self._hit(inquiry))


@dataclass(frozen=True)
class FreeMail:
    name: str
    wanted: bool

    def matches(self, inquiry: Inquiry) -> bool:
        return inquiry.free_mail == self.wanted

    def describe(self, inquiry: Inquiry, language: str = "en") -> str:
        return words(language)["free_mail" if inquiry.free_mail else "corporate"]


@dataclass(frozen=True)
class MinScore:
    name: str
    minimum: int

    def matches(self, inquiry: Inquiry) -> bool:
        return inquiry.score is not None and inquiry.score >= self.minimum

    def describe(self, inquiry: Inquiry, language: str = "en") -> str:
        return words(language)["score"].format(score=inquiry.score, minimum=self.minimum)


KEYWORD_PLACES: dict[str, Callable[[Inquiry], str]] = {
    "subject": lambda q: q.subject,
    "body": lambda q: q.text,
    "signature": lambda q: q.signature,
}
DEFAULT_KEYWORDS_IN = ("subject", "body")  # the signature only when a rule asks for it


@dataclass(frozen=True)
class Keywords:
    """Any keyword in the parts of the mail the rule names (`keywords_in`)."""

    name: str
    matcher: KeywordMatcher
    where: tuple[str, ...] = DEFAULT_KEYWORDS_IN

    def _found(self, inquiry: Inquiry) -> tuple[str, ...]:
        return self.matcher.find("\n".join(KEYWORD_PLACES[w](inquiry) for w in self.where))

    def matches(self, inquiry: Inquiry) -> bool:
        return bool(self._found(inquiry))

    def describe(self, inquiry: Inquiry, language: str = "en") -> str:
        w = words(language)
        places = "/".join(place(part, language) for part in self.where)
        where = "" if self.where == DEFAULT_KEYWORDS_IN else w["keywords_where"].format(places=places)
        return w["keywords"].format(found=w["list"].join(self._found(inquiry)), where=where)


@dataclass(frozen=True)
class CountryIn:
    """The buyer's country is listed; the reason quotes the evidence that decided it."""

    name: str
    values: frozenset[str]
    regions: tuple[str, ...] = ()  # the rule's region names, which say more than a list of codes

    def matches(self, inquiry: Inquiry) -> bool:
        return inquiry.country is not None and inquiry.country in self.values

    def describe(self, inquiry: Inquiry, language: str = "en") -> str:
        w = words(language)
        where = (w["region"].format(names=", ".join(self.regions)) if self.regions
                 else w["list"].join(sorted(self.values)))
        evidence = (w["evidence"].format(evidence=inquiry.country_evidence) if inquiry.country_evidence
                    else w["no_evidence"])
        return w["country_in"].format(country=inquiry.country, evidence=evidence, where=where)


@dataclass(frozen=True)
class CountrySource:
    """The country was decided by one of the listed kinds of evidence (form, cctld, phone...)."""

    name: str
    sources: frozenset[str]

    def matches(self, inquiry: Inquiry) -> bool:
        return inquiry.country_source in self.sources

    def describe(self, inquiry: Inquiry, language: str = "en") -> str:
        return words(language)["country_source"].format(source=source(inquiry.country_source, language))


@dataclass(frozen=True)
class CountryConfidence:
    name: str
    minimum: float

    def matches(self, inquiry: Inquiry) -> bool:
        return inquiry.country is not None and inquiry.country_confidence >= self.minimum

    def describe(self, inquiry: Inquiry, language: str = "en") -> str:
        return words(language)["country_confidence"].format(confidence=inquiry.country_confidence,
                                                            minimum=self.minimum)


@dataclass(frozen=True)
class LanguageIn:
    """"zh" in a rule also takes "zh-TW"; "zh-TW" takes only Traditional Chinese."""

    name: str
    values: frozenset[str]

    def matches(self, inquiry: Inquiry) -> bool:
        lang = inquiry.language
        return lang is not None and (lang in self.values or lang.split("-")[0] in self.values)

    def describe(self, inquiry: Inquiry, language: str = "en") -> str:
        return words(language)["language_in"].format(language=inquiry.language,
                                                     confidence=inquiry.language_confidence)


@dataclass(frozen=True)
class MainProduct:
    """The best-scored product line is listed (`product` takes any line mentioned)."""

    name: str
    values: frozenset[str]

    def matches(self, inquiry: Inquiry) -> bool:
        return bool(inquiry.products) and inquiry.products[0] in self.values

    def describe(self, inquiry: Inquiry, language: str = "en") -> str:
        return words(language)["main_product"].format(product=inquiry.products[0],
                                                      evidence=inquiry.product_evidence)


@dataclass(frozen=True)
class Rule:
    name: str
    file: str
    conditions: tuple[Condition, ...]
    rep: str | None
    team: str | None
    ladder: str | None = None  # an escalation ladder other than the default, e.g. "cold"

    def matches(self, inquiry: Inquiry) -> bool:
        return all(c.matches(inquiry) for c in self.conditions)

    def reason(self, inquiry: Inquiry, language: str = "en") -> str:
        w = words(language)
        if not self.conditions:
            return w["every"]
        return w["and"].join(c.describe(inquiry, language) for c in self.conditions)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    regions: dict[str, frozenset[str]]
    products: tuple[ProductLine, ...]
    files: tuple[str, ...]

    def first_match(self, inquiry: Inquiry) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(inquiry)), None)


RULE_KEYS = {"name", "country", "region", "language", "product", "sender_domain", "sender",
             "recipient", "free_mail", "keywords", "score_min", "tier", "rep", "team", "ladder",
             "country_source", "country_min_confidence", "main_product", "keywords_in"}
COUNTRY_SOURCES = frozenset({"form", "cctld", "phone", "name", "city", "language"})


def load_rules(rules_dir: Path, reps: Collection[str], teams: Collection[str],
               problems: list[Problem]) -> RuleSet:
    """Read every rules/*.toml in name order: [regions], [products.ID], then [[rule]]s."""
    files = sorted(rules_dir.glob("*.toml")) if rules_dir.is_dir() else []
    docs = [(str(f), read_toml(f, problems)) for f in files]
    regions: dict[str, frozenset[str]] = {}
    products: list[ProductLine] = []
    for file, doc in docs:
        r = Reader(file, problems)
        r.unknown_keys(doc, {"regions", "products", "rule"})
        _read_regions(r, r.table(doc, "regions"), regions)
        _read_products(r, r.table(doc, "products"), products)
    product_ids = {p.id for p in products}
    rules: list[Rule] = []
    for file, doc in docs:
        r = Reader(file, problems)
        items = doc.get("rule", [])
        if not isinstance(items, list):
            r.problem("rule", "must be an array of tables: [[rule]]")
            continue
        for i, d in enumerate(items):
            rule = _compile_rule(r, d, f"rule[{i}].", regions, product_ids, reps, teams)
            if rule and any(x.name == rule.name for x in rules):
                r.problem(f"rule[{i}].name", f"duplicate rule name {rule.name!r}")
            elif rule:
                rules.append(rule)
    return RuleSet(tuple(rules), regions, tuple(products), tuple(f for f, _ in docs))


def _read_regions(r: Reader, d: dict[str, Any], regions: dict[str, frozenset[str]]) -> None:
    for name, countries in d.items():
        codes = r.str_list(d, name, "regions.")
        bad = [c for c in codes if len(c) != 2 or not c.isalpha() or not c.isupper()]
        if bad:
            r.problem(f"regions.{name}", f"country codes are ISO 3166 alpha-2 in capitals, not {bad}")
        if name in regions:
            r.problem(f"regions.{name}", "region defined twice")
        regions[name] = frozenset(codes)


def _read_products(r: Reader, d: dict[str, Any], products: list[ProductLine]) -> None:
    for pid, pd in d.items():
        p = f"products.{pid}."
        if not isinstance(pd, dict):
            r.problem(p[:-1], "must be a table with keywords = [...]")
            continue
        r.unknown_keys(pd, {"keywords", "exact_case", "weight"}, p)
        keywords = r.str_list(pd, "keywords", p)
        exact_case = r.str_list(pd, "exact_case", p)
        if not keywords and not exact_case:
            r.problem(p + "keywords", "a product line needs at least one keyword")
        weight = _weight(r, pd, p)
        if any(x.id == pid for x in products):
            r.problem(p[:-1], "product line defined twice")
        products.append(ProductLine(pid, keywords, exact_case, weight))


def _weight(r: Reader, pd: dict[str, Any], p: str) -> float:
    weight = pd.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        r.problem(p + "weight", f"must be a number above 0 (1 is neutral), not {weight!r}")
        return 1.0
    return float(weight)


def _compile_rule(r: Reader, d: dict[str, Any], p: str, regions: dict[str, frozenset[str]],
                  product_ids: set[str], reps: Collection[str],
                  teams: Collection[str]) -> Rule | None:
    if not isinstance(d, dict):
        r.problem(p[:-1], "must be a table")
        return None
    name = r.get(d, "name", str, "", p, required=True)
    if name:
        p = f"rule {name!r}: "
    r.unknown_keys(d, RULE_KEYS, p)
    conditions = _conditions(r, d, p, regions, product_ids)
    rep = r.get(d, "rep", str, "", p) or None
    team = r.get(d, "team", str, "", p) or None
    if bool(rep) == bool(team):
        r.problem(p + "rep", "a rule targets exactly one of rep = \"...\" or team = \"...\"")
    if rep and rep not in reps:
        r.problem(p + "rep", f"unknown rep {rep!r} (known: {', '.join(sorted(reps))})")
    if team and team not in teams:
        r.problem(p + "team", f"unknown team {team!r} (known: {', '.join(sorted(teams)) or 'none'})")
    ladder = r.get(d, "ladder", str, "", p) or None
    return Rule(name, r.file, tuple(conditions), rep, team, ladder) if name else None


def _conditions(r: Reader, d: dict[str, Any], p: str, regions: dict[str, frozenset[str]],
                product_ids: set[str]) -> list[Condition]:
    conds: list[Condition] = []
    countries = {c.upper() for c in _checked(r, p + "country", r.str_list(d, "country", p), _country_problem)}
    region_names = r.str_list(d, "region", p)
    for name in region_names:
        if name not in regions:
            r.problem(p + "region", f"unknown region {name!r} (define it under [regions])")
        else:
            countries |= regions[name]
    if countries:
        conds.append(CountryIn("country", frozenset(countries), tuple(region_names)))
    conds += _country_evidence(r, d, p)
    if languages := _checked(r, p + "language", r.str_list(d, "language", p), _language_problem):
        conds.append(LanguageIn("language", frozenset(_language_tag(x) for x in languages)))
    for key in ("product", "main_product"):
        if products := r.str_list(d, key, p):
            for pid in products:
                if pid not in product_ids:
                    r.problem(p + key, f"unknown product line {pid!r} (define [products.{pid}])")
            conds.append(AnyIn("product", frozenset(products), lambda q: q.products)
                         if key == "product" else MainProduct(key, frozenset(products)))
    if domains := _checked(r, p + "sender_domain", r.str_list(d, "sender_domain", p), _domain_problem):
        conds.append(SenderDomain("sender_domain", tuple(x.lower() for x in domains)))
    if senders := _checked(r, p + "sender", r.str_list(d, "sender", p), _address_problem):
        conds.append(AnyIn("sender", frozenset(x.lower() for x in senders), lambda q: (q.sender,)))
    if recipients := _checked(r, p + "recipient", r.str_list(d, "recipient", p), _address_problem):
        conds.append(AnyIn("recipient", frozenset(x.lower() for x in recipients), lambda q: q.recipients))
    if "free_mail" in d:
        conds.append(FreeMail("free_mail", r.get(d, "free_mail", bool, False, p)))
    where = _keywords_in(r, d, p)
    if keywords := _checked(r, p + "keywords", r.str_list(d, "keywords", p), _keyword_problem):
        conds.append(Keywords("keywords", KeywordMatcher(keywords), where))
    if "score_min" in d:
        minimum = r.get(d, "score_min", int, 0, p)
        if not 0 <= minimum <= 100:
            r.problem(p + "score_min", "a lead score is between 0 and 100")
        conds.append(MinScore("score", minimum))
    if tiers := r.str_list(d, "tier", p):
        if bad := [t for t in tiers if t not in ("A", "B", "C")]:
            r.problem(p + "tier", f"tiers are A, B and C, not {bad}")
        conds.append(FieldIn("tier", frozenset(tiers), lambda q: q.tier))
    return conds


# A value that can never match an inquiry is refused when the rules are read: the rule would
# otherwise pass `check` and silently route nothing. Each message names the valid form.

def _checked(r: Reader, key: str, values: tuple[str, ...],
             problem: Callable[[str], str | None]) -> tuple[str, ...]:
    good = []
    for value in values:
        message = problem(value)
        if message:
            r.problem(key, message)
        else:
            good.append(value)
    return tuple(good)


def _country_problem(value: str) -> str | None:
    code = country_code(value)
    if len(value) == 2 and code == value.upper():
        return None
    hint = f"; did you mean {code!r}?" if code else ""
    return f"{value!r} is not a country code: use ISO 3166 alpha-2 codes like \"DE\", \"CN\", \"US\"{hint}"


def _language_problem(value: str) -> str | None:
    lang, _, region = value.partition("-")
    if len(lang) == 2 and lang.isascii() and lang.isalpha() and (not region or (
            len(region) == 2 and region.isascii() and region.isalpha())):
        return None
    return (f"{value!r} is not a language code: use ISO 639-1 codes like \"de\", \"en\", \"zh\" "
            "(what the language detector reports)")


_DOMAIN = re.compile(r"^\.?[a-z0-9-]+(\.[a-z0-9-]+)+$|^\.[a-z0-9-]+$")


def _domain_problem(value: str) -> str | None:
    if _DOMAIN.match(value.strip().lower()):
        return None
    return (f"{value!r} is not a domain: write \"acme.de\" (also matches its subdomains) or "
            "\".gov.cn\" (a suffix), without @, * or spaces")


def _address_problem(value: str) -> str | None:
    local, at, domain = value.strip().lower().rpartition("@")
    if at and local and "*" not in value and " " not in value.strip() and _DOMAIN.match(domain):
        return None
    return (f"{value!r} is not an email address: write the whole address, like \"buyer@acme.de\" "
            "(no wildcards; for a whole domain use sender_domain)")


def _keyword_problem(value: str) -> str | None:
    return None if value.strip() else "an empty keyword would match every message; remove it"


def _language_tag(value: str) -> str:
    """"zh-tw" -> "zh-TW": the form the parser reports a region in."""
    lang, _, region = value.partition("-")
    return f"{lang.lower()}-{region.upper()}" if region else lang.lower()


def _country_evidence(r: Reader, d: dict[str, Any], p: str) -> list[Condition]:
    conds: list[Condition] = []
    if sources := r.str_list(d, "country_source", p):
        if bad := sorted(set(sources) - COUNTRY_SOURCES):
            r.problem(p + "country_source",
                      f"unknown source(s) {bad} (known: {', '.join(sorted(COUNTRY_SOURCES))})")
        conds.append(CountrySource("country_source", frozenset(sources)))
    if "country_min_confidence" in d:
        minimum = d["country_min_confidence"]
        if isinstance(minimum, bool) or not isinstance(minimum, (int, float)) or not 0 <= minimum <= 1:
            r.problem(p + "country_min_confidence", f"must be a number from 0 to 1, not {minimum!r}")
        else:
            conds.append(CountryConfidence("country_min_confidence", float(minimum)))
    return conds


def _keywords_in(r: Reader, d: dict[str, Any], p: str) -> tuple[str, ...]:
    places = r.str_list(d, "keywords_in", p)
    if not places:
        return DEFAULT_KEYWORDS_IN
    if "keywords" not in d:
        r.problem(p + "keywords_in", "has no effect without keywords = [...]")
    if "all" in places:
        return tuple(KEYWORD_PLACES)
    if bad := [x for x in places if x not in KEYWORD_PLACES]:
        r.problem(p + "keywords_in", f"unknown part(s) {bad} (known: subject, body, signature, all)")
    return tuple(x for x in KEYWORD_PLACES if x in places)
