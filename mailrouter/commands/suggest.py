"""`mailrouter suggest-rules`: rule changes that would have caught recent manual assignments.

Each manual assignment is a manager doing a rule's job. For every trait of those messages
(country, language, product line, the sender's registered domain) the rep who got most of them
is a candidate rule — "42 of 50 Unrecognized from VN went to chen" — offered when it is both
frequent and consistent enough to be worth a rule. A domain is only ever a company's own one:
never a public suffix (".com" would catch half the world) nor a free-mail provider (gmail.com
is everybody). Each suggestion says how many other past messages it would also catch, so a
manager sees the cost before pasting it. Pure apart from `recent_manual` and `also_caught`.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mailrouter.parse.domain import extractor, host_of, is_free_mail, registered_domain
from mailrouter.store import AssignmentRow, MessageRow


@dataclass(frozen=True)
class ManualCase:
    rep: str
    country: str | None
    language: str | None
    products: tuple[str, ...]
    sender: str


@dataclass(frozen=True)
class Trait:
    key: str  # the rule condition: country, language, product, sender_domain
    value: str
    label: str  # e.g. "from VN" for the sentence

    @property
    def condition(self) -> str:
        return f'{self.key} = ["{self.value}"]'


@dataclass(frozen=True)
class Suggestion:
    condition: str  # TOML, e.g. 'country = ["VN"]'
    label: str  # e.g. "from VN" for the sentence
    rep: str
    hits: int  # cases with this trait that went to `rep`
    total: int  # cases with this trait
    trait: Trait | None = None
    also: int | None = None  # other past messages the rule would catch (None: not counted)

    def sentence(self, of: int, language: str = "en") -> str:
        if language == "zh":
            label = ZH_LABELS[self.trait.key].format(self.trait.value) if self.trait else self.label
            text = f"最近 {of} 个手动分配中，{label}的 {self.total} 个询盘有 {self.hits} 个分给了 {self.rep}"
            return text + (f"；该规则还会命中 {self.also} 封其他历史邮件" if self.also is not None else "")
        text = (f"{self.hits} of {self.total} manually assigned inquiries {self.label} went to "
                f"{self.rep} (of the last {of})")
        if self.also is not None:
            text += f"; it would also catch {self.also} other past message(s)"
        return text

    def toml(self) -> str:
        name = f"learned-{self.rep}-{self.label.split()[-1].strip('.')}".replace(" ", "-")
        return f'[[rule]]\nname = "{name}"\n{self.condition}\nrep = "{self.rep}"\n'


def traits(case: ManualCase, free_mail: frozenset[str] = frozenset()) -> list[Trait]:
    """What a rule could match on."""
    found: list[Trait] = []
    if case.country:
        found.append(Trait("country", case.country, f"from {case.country}"))
    if case.language:
        found.append(Trait("language", case.language, f"in language {case.language}"))
    found += [Trait("product", p, f"about {p}") for p in case.products]
    domain = company_domain(case.sender, free_mail)
    if domain:
        found.append(Trait("sender_domain", domain, f"from {domain}"))
    return found


def company_domain(sender: str, free_mail: frozenset[str]) -> str | None:
    """The sender's registered domain if a rule may name it: none for a host that is only a
    public suffix (or has none, like an IP), none for free mail."""
    host = host_of(sender)
    try:
        parts = extractor()(host)
    except Exception:  # malformed host (bad IDNA): nothing a rule should name
        return None
    if not parts.domain or not parts.suffix or is_free_mail(host, free_mail):
        return None
    return registered_domain(host)


def suggest(cases: list[ManualCase], min_hits: int = 3, min_share: float = 0.7,
            free_mail: frozenset[str] = frozenset()) -> list[Suggestion]:
    """Traits where one rep got at least `min_hits` cases and `min_share` of them."""
    by_trait: dict[Trait, Counter[str]] = defaultdict(Counter)
    for case in cases:
        for trait in traits(case, free_mail):
            by_trait[trait][case.rep] += 1
    result = []
    for trait, reps in by_trait.items():
        rep, hits = reps.most_common(1)[0]
        total = sum(reps.values())
        if hits >= min_hits and hits / total >= min_share:
            result.append(Suggestion(trait.condition, trait.label, rep, hits, total, trait))
    return sorted(result, key=lambda s: (-s.hits, -s.hits / s.total, s.condition))


def also_caught(session: Session, suggestion: Suggestion) -> int:
    """Past messages (any outcome) the rule would match beyond the manual cases it came from."""
    trait = suggestion.trait
    assert trait is not None
    m = MessageRow
    where = {
        "country": m.country == trait.value,
        "language": m.language == trait.value,
        "product": or_(m.products == trait.value, m.products.like(f"{trait.value} %"),
                       m.products.like(f"% {trait.value}"), m.products.like(f"% {trait.value} %")),
        "sender_domain": or_(m.sender.like(f"%@{trait.value}"), m.sender.like(f"%.{trait.value}")),
    }[trait.key]
    matched = session.scalar(select(func.count()).select_from(m).where(where, m.outcome != "duplicate")) or 0
    return max(0, matched - suggestion.total)


def recent_manual(session: Session, limit: int) -> list[ManualCase]:
    rows = session.execute(
        select(AssignmentRow.rep, MessageRow.country, MessageRow.language, MessageRow.products,
               MessageRow.sender)
        .join(MessageRow, MessageRow.id == AssignmentRow.message)
        .where(AssignmentRow.how == "manual").order_by(AssignmentRow.assigned_at.desc()).limit(limit))
    return [ManualCase(rep, country, language, tuple(products.split()), sender)
            for rep, country, language, products, sender in rows]


ZH_LABELS = {"country": "来自 {}", "language": "语言为 {}", "product": "产品为 {}", "sender_domain": "来自 {}"}


def format_suggestions(suggestions: list[Suggestion], of: int, language: str = "en") -> str:
    if not suggestions:
        return (f"最近 {of} 个手动分配中，没有足够多的共同特征可以写成规则。" if language == "zh"
                else f"No rule would have caught enough of the last {of} manual assignments.")
    parts = []
    for s in suggestions:
        parts.append(f"# {s.sentence(of, language)}\n{s.toml()}")
    return "\n".join(parts)
