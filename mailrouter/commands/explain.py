"""`mailrouter explain FILE.eml`: the decision for one message, with no side effects.

It takes the daemon's own path (issue 16 item 6): the parse, then with a database the
registry's match and the teams' state read as admission reads them (act/admit.py), then
decide/examine.examine. It writes nothing and logs in nowhere. The duplicate verdict is left
out on purpose: explaining a message the daemon already handled would otherwise always say
"duplicate"; what the database recorded for it is shown on its own line instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.config.schema import Config
from mailrouter.decide.assign import TeamState
from mailrouter.act.admit import look_up_sender, read_team_state
from mailrouter.act.forward import tag_labels, tag_subject
from mailrouter.model import Outcome
from mailrouter.act.original import InMemory, Original, Spooled
from mailrouter.decide.examine import Examined, destination, examine
from mailrouter.intake.spool import file_chunks, scan
from mailrouter.parse.process import Parsed
from mailrouter.reports.render import width
from mailrouter.store import MessageRow, utcnow


# Field labels and fixed words per language (issue 15 item 6). The reason comes worded in the
# language asked (decide/words.py); rule ids and quoted values stay as written in rules/*.toml.
LABELS = {
    "en": {"message_id": "Message-ID", "subject": "Subject", "buyer": "Buyer", "domain": "Domain",
           "country": "Country", "language": "Language", "products": "Products", "sent_to": "Sent to",
           "attachments": "Attachments", "decision": "Decision", "rule": "Rule", "reason": "Reason",
           "filed_in": "Filed in", "forward": "Forward", "labels": "Labels", "none": "(none)",
           "via_form": " via form {form}", "domain_v": "{domain} (country {country}, {kind})",
           "free_mail": "free mail", "corporate": "corporate", "evidence": " ({conf:.2f} from {source}: {evidence})",
           "undetermined": "undetermined", "confidence": " ({conf:.2f})", "main": " (main: {evidence})", "keywords": "{folder} (keywords {kw})",
           "rep_only": "{labels} (the rep's view only)", "owner": " (the customer's owner)",
           "recorded": "Recorded", "recorded_v": "{decision} (#{id}, {at})"},
    "zh": {"message_id": "Message-ID", "subject": "主题", "buyer": "客户", "domain": "域名",
           "country": "国家", "language": "语言", "products": "产品", "sent_to": "收件地址",
           "attachments": "附件", "decision": "决定", "rule": "规则", "reason": "原因",
           "filed_in": "归档到", "forward": "转发主题", "labels": "标签", "none": "（无）",
           "via_form": "（经表单 {form}）", "domain_v": "{domain}（国家 {country}，{kind}）",
           "free_mail": "免费邮箱", "corporate": "企业邮箱", "evidence": "（{conf:.2f}，依据 {source}：{evidence}）",
           "undetermined": "未确定", "confidence": "（{conf:.2f}）", "main": "（主要：{evidence}）", "keywords": "{folder}（关键字 {kw}）",
           "rep_only": "{labels}（仅业务员可见）", "owner": "（客户负责人）",
           "recorded": "已记录", "recorded_v": "{decision}（#{id}，{at}）"},
}


@dataclass(frozen=True)
class Recorded:
    """What the database holds for the same content: the daemon's decision, as it stands now."""

    id: int
    outcome: str
    rep: str | None
    decided_at: datetime


def explain_file(config: Config, path: Path, language: str = "en",
                 sessions: sessionmaker[Session] | None = None, now: datetime | None = None) -> str:
    if path.stat().st_size > config.large_message_bytes:  # read in chunks, as the daemon would
        return explain_original(config, Spooled(scan(file_chunks(path), path)), language, sessions, now)
    return explain_bytes(config, path.read_bytes(), language, sessions, now)


def explain_bytes(config: Config, raw: bytes, language: str = "en",
                  sessions: sessionmaker[Session] | None = None, now: datetime | None = None) -> str:
    return explain_original(config, InMemory(raw), language, sessions, now)


def explain_original(config: Config, original: Original, language: str = "en",
                     sessions: sessionmaker[Session] | None = None, now: datetime | None = None) -> str:
    """The daemon's decision path, read-only. Without `sessions` (no database yet) there is no
    registry and the teams start their rotation afresh."""
    parsed = original.parse(config.parse)
    if sessions is None:
        return explain_examined(config, examine(parsed, config, TeamState(), language=language), language)
    with sessions() as session:
        examined, recorded = examine_now(session, config, parsed, now or utcnow(), language)
    return explain_examined(config, examined, language, recorded)


def examine_now(session: Session, config: Config, parsed: Parsed, now: datetime,
                language: str = "en") -> tuple[Examined, Recorded | None]:
    """examine() given what admission would read now, and what was recorded for this content."""
    looked_up = look_up_sender(session, config, parsed, now)
    examined = examine(parsed, config, read_team_state(session, now), looked_up.match if looked_up else None,
                       language=language)
    row = session.scalars(select(MessageRow).where(MessageRow.content_key == parsed.content_key)
                          .order_by(MessageRow.duplicate_of.is_not(None), MessageRow.id).limit(1)).first()
    recorded = Recorded(row.id, row.outcome, row.rep, row.decided_at) if row and parsed.content_key else None
    return examined, recorded


def explain_examined(config: Config, examined: Examined, language: str = "en",
                     recorded: Recorded | None = None) -> str:
    t = LABELS["zh" if language == "zh" else "en"]
    q, d = examined.inquiry, examined.decision
    folder, keywords = destination(d, config)
    fields: list[tuple[str, str]] = []
    if q is not None:
        fields += [
            ("message_id", q.message_id or t["none"]),
            ("subject", q.subject),
            ("buyer", f"{q.sender_name + ' ' if q.sender_name else ''}<{q.sender}>"
             + (t["via_form"].format(form=q.via_form) if q.via_form else "")),
            ("domain", t["domain_v"].format(domain=q.domain or "-", country=q.country or "-",
                                            kind=t["free_mail"] if q.free_mail else t["corporate"])),
            ("country", (q.country or "-") + (t["evidence"].format(
                conf=q.country_confidence, source=q.country_source, evidence=q.country_evidence)
                if q.country else "")),
            ("language", (q.language or t["undetermined"]) + t["confidence"].format(conf=q.language_confidence)),
            ("products", (", ".join(q.products) or "-")
             + (t["main"].format(evidence=q.product_evidence) if q.product_evidence else "")),
            ("sent_to", ", ".join(q.recipients) or "-"),
            ("attachments", ", ".join(a.filename for a in q.attachments) or "-"),
        ]
    fields += [
        ("decision", d.outcome.value + (f" -> {d.rep}" if d.rep else "") + (t["owner"] if d.reinquiry else "")),
        ("rule", d.rule or "-"),
        ("reason", d.reason_in(language)),
        ("filed_in", t["keywords"].format(folder=folder, kw=" ".join(keywords))),
    ]
    if d.outcome is Outcome.ROUTED and q is not None:
        fields.append(("forward", tag_subject(config.subject_format, q, d)))
        fields.append(("labels", t["rep_only"].format(labels=tag_labels(config.labels, q, d) or "-")))
    if recorded is not None:
        at = recorded.decided_at.astimezone(config.timezone).strftime("%Y-%m-%d %H:%M %Z")
        fields.append(("recorded", t["recorded_v"].format(
            decision=recorded.outcome + (f" -> {recorded.rep}" if recorded.rep else ""), id=recorded.id, at=at)))
    return "\n".join(aligned([(t[key], value) for key, value in fields], language))


# Where values start, in terminal columns: English "Message-ID: " fits (the rare longer label
# takes one space); Chinese "Message-ID：" is 12 columns with its full-width colon.
VALUE_COLUMN = {"en": 12, "zh": 13}


def aligned(fields: list[tuple[str, str]], language: str) -> list[str]:
    """`Label:` then the value in one column, counted in terminal columns (CJK labels take two)."""
    colon = "：" if language == "zh" else ":"
    heads = [label + colon for label, _ in fields]
    column = VALUE_COLUMN["zh" if language == "zh" else "en"]
    return [head + " " * max(1, column - width(head)) + value for head, (_, value) in zip(heads, fields)]
