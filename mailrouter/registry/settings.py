"""The `[registry]` section of config.toml, read with the shared problem-collecting reader (config/reader.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailrouter.config.reader import Reader
from mailrouter.parse.countries import country_code
from mailrouter.registry.score import POINT_KEYS, ScoreSettings

POSITIONS = ("before_rules", "after_rules")


@dataclass(frozen=True)
class RegistrySettings:
    enabled: bool = True
    position: str = "before_rules"  # a match routes to the owner before (or after) the rules
    quiet_days: int = 180  # ownership lapses after this long without contact
    source: str = "Email"  # source recorded on customers created by routing
    learn_from_manual: bool = True  # a manual assignment makes its sender a customer of that rep
    block_not_inquiry: bool = False  # "Not an inquiry" also blocks the sender's address
    score: ScoreSettings = field(default_factory=ScoreSettings)


def read_registry_section(r: Reader, d: dict[str, Any]) -> RegistrySettings:
    """Validate `[registry]` (and `[registry.score]`), recording every problem in `r`."""
    p = "registry."
    r.unknown_keys(d, {"enabled", "position", "quiet_days", "source", "score", "learn_from_manual",
                       "block_not_inquiry"}, p)
    position = r.get(d, "position", str, "before_rules", p)
    if position not in POSITIONS:
        r.problem(p + "position", f"must be one of {', '.join(POSITIONS)}, not {position!r}")
        position = "before_rules"
    quiet = r.get(d, "quiet_days", int, 180, p)
    if quiet < 1:
        r.problem(p + "quiet_days", "must be at least 1 day")
    return RegistrySettings(enabled=r.get(d, "enabled", bool, True, p), position=position,
                            quiet_days=max(quiet, 1), source=r.get(d, "source", str, "Email", p),
                            learn_from_manual=r.get(d, "learn_from_manual", bool, True, p),
                            block_not_inquiry=r.get(d, "block_not_inquiry", bool, False, p),
                            score=_score_section(r, r.table(d, "score", p)))


def _score_section(r: Reader, d: dict[str, Any]) -> ScoreSettings:
    p = "registry.score."
    r.unknown_keys(d, set(POINT_KEYS) | {"key_account_domains", "countries"}, p)
    defaults = ScoreSettings()
    points = {k: r.get(d, k, int, getattr(defaults, k), p) for k in POINT_KEYS}
    if points["tier_b"] > points["tier_a"]:
        r.problem(p + "tier_b", "must not be above tier_a")
    countries: dict[str, int] = {}
    for name, value in r.table(d, "countries", p).items():
        code = country_code(name)
        if code is None:
            r.problem(f"{p}countries.{name}", "unknown country (use an ISO code such as DE)")
        elif not isinstance(value, int) or isinstance(value, bool):
            r.problem(f"{p}countries.{name}", f"must be an integer, not {value!r}")
        else:
            countries[code] = value
    domains = frozenset(x.lower() for x in r.str_list(d, "key_account_domains", p))
    return ScoreSettings(**points, key_account_domains=domains, countries=countries)
