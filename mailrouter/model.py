"""Plain data passed between the pipeline stages.

intake (raw bytes) -> parse (Inquiry) -> classify/decide (Decision) -> act (forward, file).
Nothing here does I/O; every stage after intake is a function of these objects.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

# What every stage that needs "now" takes, so tests can move time (UTC, aware).
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class Inquiry:
    """What the router knows about one incoming message, all header text already sanitised.

    `sender` is the buyer: for mail from a configured web form or B2B platform it is the
    address the form names, not the robot that sent it (that one is `from_address`).
    """

    message_id: str  # "<...>" as found, or "" when missing; never contains CR/LF
    subject: str  # one line, decoded
    from_address: str  # address in the From header, lower-cased ("" if unreadable)
    sender: str  # the buyer's address, lower-cased
    sender_name: str
    reply_to: str  # where a rep's Reply should go (the buyer)
    domain: str  # registered domain of `sender`, e.g. "acme.co.uk"
    country: str | None  # ISO 3166 alpha-2 from the best evidence (parse/country.py), e.g. "GB"
    free_mail: bool
    recipients: tuple[str, ...]  # To, Cc, Delivered-To, X-Original-To; lower-cased
    text: str  # body as plain text, quoted history and signature left out
    signature: str  # the signature block, if one was found (phones, company)
    language: str | None  # ISO 639-1 from langdetect, None below the confidence threshold
    language_confidence: float
    products: tuple[str, ...]  # product-line ids, best match first
    attachments: tuple[Attachment, ...]
    date: datetime | None  # the Date header, timezone-aware, if parseable
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names, for classifiers
    content_type: str = "text/plain"  # top-level MIME type, e.g. "multipart/report"
    company: str | None = None  # from a form's labelled fields
    via_form: str | None = None  # name of the form/platform sender that relayed it
    score: int | None = None  # lead score 0..100, set once the registry has been consulted
    tier: str | None = None  # "A" | "B" | "C" from the score bands
    country_confidence: float = 0.0  # 0..1; agreeing evidence raises it, conflicting lowers it
    country_source: str | None = None  # what decided `country`: form|cctld|phone|name|city|language
    country_evidence: str = ""  # e.g. "phone +34 in signature; 'España' in signature"
    product_evidence: str = ""  # why products[0] won, e.g. "VALVE 7 (valve x2, subject 'valve')"
    reply_to_name: str = ""  # the display name written with `reply_to` (not the From's)


class Outcome(str, enum.Enum):
    ROUTED = "routed"
    UNRECOGNIZED = "unrecognized"
    IGNORED = "ignored"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    UNDELIVERABLE = "undeliverable"  # the forward failed permanently


@dataclass(frozen=True)
class Decision:
    """Where a message goes and why; the reason is what the log line and `explain` print."""

    outcome: Outcome
    reason: str
    rule: str | None = None
    rep: str | None = None
    team: str | None = None
    how: str = "rule"  # rule | registry | manual | reassign: what chose the rep
    ladder: str | None = None  # escalation ladder chosen by the rule (None: the default)
    notes: tuple[tuple[str, str], ...] = ()  # extra routing-block lines (re-inquiry, score…)
    # the reason in other languages, as (language, text): for the rep's forward and `explain`;
    # `reason` itself (English) is what the log line and the database keep
    reasons: tuple[tuple[str, str], ...] = ()

    def reason_in(self, language: str) -> str:
        """The reason worded for a reader of `language`; English where it was not worded."""
        return dict(self.reasons).get(language, self.reason)

    @property
    def reinquiry(self) -> bool:
        """A known customer routed to its owner (再次询盘): tagged and raised in priority."""
        return self.how == "registry"


# The router marks every message it sends with this header (and Auto-Submitted), so its own
# mail arriving back in a shared mailbox is recognised and no loop can start.
ROUTER_HEADER = "X-Mailrouter"


@dataclass(frozen=True)
class FormSender:
    """A robot sender (website contact form, B2B platform) whose mail names the real buyer."""

    name: str
    addresses: tuple[str, ...]  # exact addresses ("noreply@site.com") or domains ("@alibaba.com")


@dataclass(frozen=True)
class ProductLine:
    id: str  # short tag used in subjects and rules, e.g. "PCB"
    keywords: tuple[str, ...]  # any language; matched as whole words, case/accent-insensitive
    exact_case: tuple[str, ...] = ()  # matched only as written: "LED" the product, not "led" the verb
    weight: float = 1.0  # multiplies the line's score, to favour a line when several are named


@dataclass(frozen=True)
class ParseSettings:
    free_mail_domains: frozenset[str]
    form_senders: tuple[FormSender, ...] = ()
    products: tuple[ProductLine, ...] = ()
    language_threshold: float = 0.80
    min_language_chars: int = 20  # letters (a CJK character counts 3) below which no language is claimed
