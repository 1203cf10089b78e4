"""`mailrouter suggest-rules`: rule changes that would have caught recent manual assignments.

Each manual assignment is a manager doing a rule's job. For every trait of those messages
(country, language, product line, sender domain ending) the rep who got most of them is a
candidate rule — "42 of 50 Unrecognized from .vn went to chen" — offered when it is both
frequent and consistent enough to be worth a rule. Pure apart from `recent_manual`.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailrouter.store import AssignmentRow, MessageRow


@dataclass(frozen=True)
class ManualCase:
    rep: str
    country: str | None
    language: str | None
    products: tuple[str, ...]
    sender: str


@dataclass(frozen=True)
class Suggestion:
    condition: str  # TOML, e.g. 'country = ["VN"]'
    label: str  # e.g. "from .vn" for the sentence
    rep: str
    hits: int  # cases with this trait that went to `rep`
    total: int  # cases with this trait

    def sentence(self, of: int) -> str:
        return (f"{self.hits} of {self.total} manually assigned inquiries {self.label} went to "
                f"{self.rep} (of the last {of})")

    def toml(self) -> str:
        name = f"learned-{self.rep}-{self.label.split()[-1].strip('.')}".replace(" ", "-")
        return f'[[rule]]\nname = "{name}"\n{self.condition}\nrep = "{self.rep}"\n'


def traits(case: ManualCase) -> list[tuple[str, str]]:
    """(condition, label) pairs a rule could match on."""
    found: list[tuple[str, str]] = []
    if case.country:
        found.append((f'country = ["{case.country}"]', f"from {case.country}"))
    if case.language:
        found.append((f'language = ["{case.language}"]', f"in language {case.language}"))
    found += [(f'product = ["{p}"]', f"about {p}") for p in case.products]
    host = case.sender.rpartition("@")[2]
    if "." in host:
        tld = "." + host.rsplit(".", 1)[1]
        found.append((f'sender_domain = ["{tld}"]', f"from {tld}"))
    return found


def suggest(cases: list[ManualCase], min_hits: int = 3, min_share: float = 0.7) -> list[Suggestion]:
    """Traits where one rep got at least `min_hits` cases and `min_share` of them."""
    by_trait: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for case in cases:
        for trait in traits(case):
            by_trait[trait][case.rep] += 1
    result = []
    for (condition, label), reps in by_trait.items():
        rep, hits = reps.most_common(1)[0]
        total = sum(reps.values())
        if hits >= min_hits and hits / total >= min_share:
            result.append(Suggestion(condition, label, rep, hits, total))
    return sorted(result, key=lambda s: (-s.hits, -s.hits / s.total, s.condition))


def recent_manual(session: Session, limit: int) -> list[ManualCase]:
    rows = session.execute(
        select(AssignmentRow.rep, MessageRow.country, MessageRow.language, MessageRow.products,
               MessageRow.sender)
        .join(MessageRow, MessageRow.id == AssignmentRow.message)
        .where(AssignmentRow.how == "manual").order_by(AssignmentRow.assigned_at.desc()).limit(limit))
    return [ManualCase(rep, country, language, tuple(products.split()), sender)
            for rep, country, language, products, sender in rows]


def format_suggestions(suggestions: list[Suggestion], of: int) -> str:
    if not suggestions:
        return f"No rule would have caught enough of the last {of} manual assignments."
    parts = []
    for s in suggestions:
        parts.append(f"# {s.sentence(of)}\n{s.toml()}")
    return "\n".join(parts)
