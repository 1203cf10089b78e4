"""Lead score and tier of an inquiry, from signals a sales manager can weigh (pure)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from mailrouter.model import Inquiry
from mailrouter.registry.normalise import company_candidates, extract_phones, has_legal_form

_INCOTERMS = re.compile(r"\b(FOB|CIF|CFR|EXW|DDP|DAP|FCA|CPT|CIP)\b")
_QUANTITY = re.compile(r"\bMOQ\b|\b\d[\d,.\s]*\s*(pcs|pieces|units|sets|pairs|rolls|cartons|"
                       r"containers|tons?|k\s?pcs)\b|\d\s*(件|个|套|台|吨|箱)|\b\d+\s*x\s*40\s*(HQ|GP)\b",
                       re.IGNORECASE)
_SPEC = re.compile(r"\b\d+(?:[.,]\d+)?\s*(mm|cm|m|kg|g|v|kv|w|kw|a|mah|hz|bar|psi|°c|inch|\")"
                   r"(?![a-z])", re.IGNORECASE)
_DRAWING_EXT = (".pdf", ".dwg", ".dxf", ".step", ".stp", ".igs", ".iges", ".x_t")
_RFQ = re.compile(r"\b(RFQ|RFP|request for quotation)\b|询价", re.IGNORECASE)


@dataclass(frozen=True)
class ScoreSettings:
    """Points per signal and the tier bands; every field is a `[registry.score]` key."""

    corporate_domain: int = 15
    free_mail: int = -5
    incoterms: int = 10
    quantity: int = 15
    specs: int = 5
    drawing: int = 15
    rfq: int = 10
    signature_phone: int = 5
    signature_company: int = 5
    reinquiry: int = 15
    key_account: int = 30
    key_account_domains: frozenset[str] = frozenset()
    countries: Mapping[str, int] = field(default_factory=dict)  # ISO alpha-2 -> points
    tier_a: int = 60  # points >= tier_a -> "A"
    tier_b: int = 30  # points >= tier_b -> "B", else "C"


POINT_KEYS = tuple(f.name for f in fields(ScoreSettings) if f.type == "int")


# Each signal's words, per language: a zh rep reads the score's reasons in the forward.
SIGNAL_WORDS = {
    "en": {"free_mail": "free-mail address", "corporate": "corporate domain {v}", "key_account": "key account {v}",
           "incoterm": "incoterm {v}", "quantity": "quantity \"{v}\"", "spec": "specification \"{v}\"",
           "drawing": "drawing attached ({v})", "rfq": "RFQ in subject or file name",
           "signature_phone": "phone in signature", "company": "company named",
           "reinquiry": "re-inquiry (known customer)", "country": "country {v}"},
    "zh": {"free_mail": "免费邮箱地址", "corporate": "企业域名 {v}", "key_account": "重点客户 {v}",
           "incoterm": "贸易术语 {v}", "quantity": "数量“{v}”", "spec": "规格“{v}”",
           "drawing": "附有图纸（{v}）", "rfq": "主题或文件名含 RFQ",
           "signature_phone": "签名中有电话", "company": "写明了公司名",
           "reinquiry": "再次询盘（老客户）", "country": "国家 {v}"},
}


@dataclass(frozen=True)
class Score:
    points: int  # 0..100
    tier: str  # "A" | "B" | "C"
    signals: tuple[tuple[int, str, str], ...] = ()  # (points, SIGNAL_WORDS key, value), best read in order

    @property
    def reasons(self) -> tuple[str, ...]:
        """ "+15 corporate domain acme.de": what logs and reports show."""
        return self.reasons_in("en")

    def reasons_in(self, language: str) -> tuple[str, ...]:
        words = SIGNAL_WORDS.get(language, SIGNAL_WORDS["en"])
        return tuple(f"{p:+d} {words[key].format(v=value)}" for p, key, value in self.signals)


def _signals(inquiry: Inquiry, s: ScoreSettings, reinquiry: bool) -> list[tuple[int, str, str]]:
    """(points, SIGNAL_WORDS key, value) for every signal present; absent signals say nothing."""
    text = f"{inquiry.subject}\n{inquiry.text}"
    names = [a.filename.lower() for a in inquiry.attachments]
    found: list[tuple[int, str, str]] = []
    if inquiry.free_mail:
        found.append((s.free_mail, "free_mail", ""))
    elif inquiry.domain:
        found.append((s.corporate_domain, "corporate", inquiry.domain))
    if inquiry.domain in s.key_account_domains:
        found.append((s.key_account, "key_account", inquiry.domain or ""))
    if m := _INCOTERMS.search(text):
        found.append((s.incoterms, "incoterm", m.group(1)))
    if m := _QUANTITY.search(text):
        found.append((s.quantity, "quantity", m.group(0).strip()))
    if m := _SPEC.search(text):
        found.append((s.specs, "spec", m.group(0).strip()))
    if drawings := [n for n in names if n.endswith(_DRAWING_EXT)]:
        found.append((s.drawing, "drawing", drawings[0]))
    if _RFQ.search(inquiry.subject) or any(_RFQ.search(n) for n in names):
        found.append((s.rfq, "rfq", ""))
    found += _signature_signals(inquiry, s)
    if reinquiry:
        found.append((s.reinquiry, "reinquiry", ""))
    if inquiry.country and (pts := s.countries.get(inquiry.country)):
        found.append((pts, "country", inquiry.country))
    return found


def _signature_signals(inquiry: Inquiry, s: ScoreSettings) -> list[tuple[int, str, str]]:
    found: list[tuple[int, str, str]] = []
    if extract_phones(inquiry.signature, inquiry.country):
        found.append((s.signature_phone, "signature_phone", ""))
    if inquiry.company or any(has_legal_form(n) for n in company_candidates(inquiry.signature)):
        found.append((s.signature_company, "company", ""))
    return found


def tier_of(points: int, s: ScoreSettings) -> str:
    return "A" if points >= s.tier_a else "B" if points >= s.tier_b else "C"


def score_inquiry(inquiry: Inquiry, settings: ScoreSettings = ScoreSettings(), *,
                  reinquiry: bool = False) -> Score:
    """Add up the signals, clamp to 0..100 and band into a tier."""
    signals = tuple((p, key, value) for p, key, value in _signals(inquiry, settings, reinquiry) if p)
    points = max(0, min(100, sum(p for p, _key, _value in signals)))
    return Score(points, tier_of(points, settings), signals)
