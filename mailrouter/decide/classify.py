"""Recognise mail that is not a buyer's inquiry: bounces, auto-replies, lists.

Pure: every check reads only the `Inquiry`. The rules are data (tuples below) so adding a
header or a language is one line; each check is a small function returning a reason or None.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from mailrouter.model import Inquiry

# Local parts that only mail systems send from (RFC 5321 postmaster, sendmail MAILER-DAEMON).
BOUNCE_LOCAL_PARTS: tuple[str, ...] = ("mailer-daemon", "postmaster", "mail-daemon")

# Headers whose mere presence marks a bounce.
BOUNCE_HEADERS: tuple[str, ...] = ("x-failed-recipients",)

# Non-standard headers auto-responders add (Auto-Submitted is RFC 3834 and checked separately).
AUTO_REPLY_HEADERS: tuple[str, ...] = (
    "x-autoreply",
    "x-autorespond",
    "x-autoreply-from",
    "x-mail-autoreply",
)

AUTO_REPLY_PRECEDENCE: tuple[str, ...] = ("auto_reply",)
BULK_PRECEDENCE: tuple[str, ...] = ("bulk", "list", "junk")

# Subject prefixes of out-of-office / automatic replies, one language per line. Matched at the
# start of the subject, case- and accent-insensitive, and only when followed by a separator or
# the end, so "Out-of-office furniture" or "外出旅游用品询价" is not taken for an absence note.
# Words may be joined by space, hyphen or nothing ("auto reply" matches "Auto-Reply", "Autoreply").
OUT_OF_OFFICE_SUBJECTS: tuple[str, ...] = (
    "automatic reply", "auto reply", "auto response", "out of office",
    "out of office autoreply", "out of the office", "away from the office", "vacation reply",  # en
    "自动回复", "自动答复", "自动应答", "外出", "休假", "休假中", "不在办公室",  # zh-Hans
    "自動回覆", "自動答覆",  # zh-Hant
    "abwesenheitsnotiz", "automatische antwort", "automatische abwesenheitsnotiz", "abwesend",  # de
    "respuesta automatica", "fuera de la oficina", "fuera de oficina", "ausente",  # es
    "автоответ", "автоматический ответ", "нет на месте", "вне офиса",  # ru
    "reponse automatique", "absence", "absent", "message d'absence",  # fr
    "resposta automatica", "fora do escritorio", "ausencia",  # pt
    "risposta automatica", "fuori sede", "fuori ufficio", "assente",  # it
    "otomatik yanıt", "otomatik cevap", "ofis dışında",  # tr
    "automatisch antwoord", "afwezig", "niet aanwezig",  # nl
    "automatyczna odpowiedz", "poza biurem",  # pl
    "autosvar", "automatiskt svar", "fravær", "frånvaro",  # da/no/sv
    "自動応答", "自動返信", "不在",  # ja
    "자동 회신", "자동 응답", "부재중",  # ko
    "رد تلقائي", "خارج المكتب",  # ar
    "trả lời tự động", "tra loi tu dong",  # vi
    "balasan otomatis",  # id/ms
)

# Tags gateways put in front of a subject ("[EXTERNAL] Automatic reply: …").
_LEADING_TAGS = re.compile(r"^(?:\s*(?:\[[^\]]*\]|【[^】]*】))+\s*")
_SEPARATOR_AHEAD = r"(?=\s*(?:[:\-–—(\[|/,.!]|$))"
_REPORT_TYPE = re.compile(r"report-type\s*=\s*\"?([\w.-]+)", re.IGNORECASE)
_REPORT_KINDS: dict[str, str] = {
    "delivery-status": "bounce",
    "disposition-notification": "read receipt",
}


def _fold(text: str) -> str:
    """Case- and accent-insensitive form, also mapping full-width "：" to ":".

    Turkish dotless ı is folded to i because "YANIT".casefold() gives "yanit".
    """
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return bare.casefold().replace("ı", "i")


def _phrase_pattern(phrase: str) -> str:
    words = _fold(phrase).split()
    return r"[\s\-_]*".join(re.escape(word) for word in words)


# Longest first so the reason quotes the most specific phrase; the compiled form is built once.
_OUT_OF_OFFICE = re.compile(
    "^(?:"
    + "|".join(_phrase_pattern(p) for p in sorted(OUT_OF_OFFICE_SUBJECTS, key=len, reverse=True))
    + ")"
    + _SEPARATOR_AHEAD
)


def _header(inquiry: Inquiry, name: str) -> str:
    return inquiry.headers.get(name, "").strip()


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def delivery_report(inquiry: Inquiry) -> str | None:
    if inquiry.content_type.lower() != "multipart/report":
        return None
    found = _REPORT_TYPE.search(_header(inquiry, "content-type"))
    report_type = found.group(1).lower() if found else "unknown"
    kind = _REPORT_KINDS.get(report_type, "report")
    return f"{kind}: multipart/report {report_type}"


def bounce_sender(inquiry: Inquiry) -> str | None:
    local_part = inquiry.from_address.partition("@")[0].lower()
    if local_part in BOUNCE_LOCAL_PARTS:
        return f"bounce: from {inquiry.from_address}"
    return None


def bounce_header(inquiry: Inquiry) -> str | None:
    for name in BOUNCE_HEADERS:
        if name in inquiry.headers:
            return f"bounce: {name}: {_shorten(_header(inquiry, name))}"
    return None


def auto_submitted(inquiry: Inquiry) -> str | None:
    # RFC 3834: any value but "no" (parameters after ";" are comments for our purpose).
    value = _header(inquiry, "auto-submitted").split(";")[0].strip().lower()
    if value and value != "no":
        return f"auto-reply: Auto-Submitted: {value}"
    return None


def auto_reply_header(inquiry: Inquiry) -> str | None:
    for name in AUTO_REPLY_HEADERS:
        value = _header(inquiry, name)
        if name in inquiry.headers and value.lower() != "no":
            return f"auto-reply: {name}: {_shorten(value) or '(empty)'}"
    return None


def precedence(inquiry: Inquiry) -> str | None:
    value = _header(inquiry, "precedence").lower()
    if value in AUTO_REPLY_PRECEDENCE:
        return f"auto-reply: Precedence: {value}"
    if value in BULK_PRECEDENCE and not inquiry.via_form:
        unsubscribe = " with List-Unsubscribe" if "list-unsubscribe" in inquiry.headers else ""
        return f"bulk: Precedence: {value}{unsubscribe}"
    return None


def out_of_office_subject(inquiry: Inquiry) -> str | None:
    subject = _LEADING_TAGS.sub("", _fold(inquiry.subject))
    if _OUT_OF_OFFICE.match(subject):
        return f"out-of-office subject: '{_shorten(inquiry.subject)}'"
    return None


def mailing_list(inquiry: Inquiry) -> str | None:
    # List-Id (RFC 2919) is only added by list servers. A configured form/platform sender is
    # known to relay real inquiries, whatever list headers its mailer adds.
    if "list-id" in inquiry.headers and not inquiry.via_form:
        return f"mailing list: List-Id {_shorten(_header(inquiry, 'list-id'))}"
    return None


def null_return_path(inquiry: Inquiry) -> str | None:
    # Checked after the auto-reply rules: RFC 3834 responders also use the null sender, and
    # their reason is more telling.
    if "return-path" in inquiry.headers and re.fullmatch(r"<\s*>", _header(inquiry, "return-path")):
        return "bounce: Return-Path <>"
    return None


# Order matters only for which reason is reported when several apply.
CHECKS: tuple[Callable[[Inquiry], str | None], ...] = (
    delivery_report,
    bounce_sender,
    bounce_header,
    auto_submitted,
    auto_reply_header,
    precedence,
    out_of_office_subject,
    mailing_list,
    null_return_path,
)


def is_auto_reply(inquiry: Inquiry) -> bool:
    """An automatic answer (out-of-office and the like), whoever sent it."""
    return any(check(inquiry) for check in (auto_submitted, auto_reply_header, out_of_office_subject))


def not_an_inquiry(inquiry: Inquiry) -> str | None:
    """Why this message is not a buyer's inquiry, or None if it may be one.

    Mail claiming to be our own (the router's marker, a rep's From) is judged before this, in
    decide/trust.py. List-Unsubscribe alone is deliberately not a reason: buyers' sales tools add
    it to one-off RFQs, and a lost inquiry costs more than a newsletter reaching a rep.
    """
    for check in CHECKS:
        if reason := check(inquiry):
            return reason
    return None
