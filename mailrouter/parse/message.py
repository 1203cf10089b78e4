"""parse_message: raw RFC 5322 bytes -> Inquiry."""
from __future__ import annotations

import email
import email.policy
import logging
from dataclasses import dataclass, replace
from email.message import Message

import mailparser

from mailrouter.model import FormSender, Inquiry, ParseSettings

from mailrouter.parse import body, country, domain, forms, headers, stream
from mailrouter.parse.attachments import attachments
from mailrouter.parse.countries import country_code
from mailrouter.parse.errors import UnreadableMessage
from mailrouter.parse.language import detect
from mailrouter.parse.products import product_evidence, rank_products

log = logging.getLogger("mailrouter.parse")

# At least one of these must be present for bytes to count as an email at all. Trace headers
# (Received, Return-Path, Delivered-To) don't count: the delivering server adds them to anything.
_MAIL_HEADERS = frozenset({
    "from", "to", "cc", "subject", "date", "message-id", "sender", "reply-to", "mime-version",
    "content-type",
})


@dataclass(frozen=True)
class Identity:
    """Who the buyer is, after resolving form and platform relays."""

    from_address: str
    sender: str
    sender_name: str
    reply_to: str
    country: str | None = None
    company: str | None = None
    via_form: str | None = None
    reply_to_name: str = ""  # the display name that goes with `reply_to`


# mail-parser decodes every attachment into lists of its own, which we do not use (we read the
# tree it builds): above this size that costs several times the message in memory, so big
# messages go straight to the stdlib parser, which keeps payloads encoded until asked.
MAIL_PARSER_LIMIT = 1_000_000


def load(raw: bytes) -> Message:
    """The message tree: mail-parser first, the stdlib's lenient compat32 parser if it fails."""
    if len(raw) <= MAIL_PARSER_LIMIT:
        try:
            parsed = mailparser.parse_from_bytes(raw).message
            if parsed is not None:
                return parsed
        except Exception as exc:  # mail-parser raises its own and stdlib types on hostile input
            log.info("mail-parser failed (%s); falling back to the stdlib parser", exc)
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except MemoryError:  # over daemon.parse_memory_mb: the parser says so, not "unreadable"
        raise
    except Exception as exc:
        raise UnreadableMessage(f"not parseable as email: {exc}") from exc


def check_readable(raw: bytes, msg: Message) -> None:
    if not raw or raw.isspace():  # (not raw.strip(): that would copy a 30 MB message)
        raise UnreadableMessage("empty message")
    names = {str(name).lower() for name in msg.keys()}
    if not names & _MAIL_HEADERS:
        raise UnreadableMessage("no email headers found")


def identity(msg: Message, text: str, settings: ParseSettings) -> Identity:
    """The buyer: From (or Sender), unless From is a configured form or platform robot."""
    from_name, from_address = headers.first_address(msg, "from")
    sender_name, sender = from_name, from_address
    if not sender:
        sender_name, sender = headers.first_address(msg, "sender")
    reply_name, reply_to = headers.first_address(msg, "reply-to")
    robot = forms.find_form_sender(from_address, settings.form_senders) if from_address else None
    if robot is None:
        return Identity(from_address, sender or reply_to, sender_name, reply_to or sender,
                        reply_to_name=reply_name if reply_to else sender_name)
    return form_identity(msg, text, settings, from_address, robot)


def form_identity(msg: Message, text: str, settings: ParseSettings, from_address: str,
                  robot: FormSender) -> Identity:
    fields = forms.read_fields(text)
    reply_name, reply_to = headers.first_address(msg, "reply-to")
    if reply_to and forms.find_form_sender(reply_to, settings.form_senders) is None:
        buyer, name = reply_to, reply_name or fields.name
    else:
        buyer, name = fields.email or from_address, fields.name
    return Identity(from_address, buyer, name, buyer, fields.country, fields.company, robot.name, name)


def _parse_reduced(raw: bytes, settings: ParseSettings) -> Inquiry:
    """A message with many multiparts, read as the spool path reads a big one: the stdlib
    parser checks every line against every enclosing boundary (300 levels x 100,000 lines: 5 s,
    growing with both), the reducer costs the lines once and cuts the nesting at MAX_DEPTH."""
    reduced = stream.reduce_message(raw)
    if reduced.problem:
        raise UnreadableMessage(f"unreadable MIME structure: {reduced.problem}")
    return replace(_parse_tree(reduced.message, settings), attachments=reduced.attachments)


def country_clues(who: Identity, host: str, free_mail: bool, text: str, signature: str,
                  language: str | None) -> country.Clues:
    """A relayed form's country field, else a "Country:" line the buyer filled in themselves."""
    label = who.country or forms.labelled(text, "country")
    form_country = who.country or (country_code(label) if label else None)
    return country.Clues(
        form_country=form_country, form_label=label, cctld_country=domain.country_of(host),
        tld=host.rpartition(".")[2], free_mail=free_mail, signature=signature, body=text,
        language=language)


def parse_message(raw: bytes, settings: ParseSettings) -> Inquiry:
    """Everything the router needs to know about one message; damage is tolerated.

    Raises UnreadableMessage only when the bytes are not an email at all.
    """
    raw = headers.normalise_head(raw)
    if raw.count(b"oundary") > stream.MAX_DEPTH:
        return _parse_reduced(raw, settings)
    return _parse_tree(raw, settings)


def _parse_tree(raw: bytes, settings: ParseSettings) -> Inquiry:
    msg = load(raw)
    check_readable(raw, msg)
    subject = headers.subject(msg)
    full = body.full_text(msg)
    text, signature = body.split_reply(full)
    who = identity(msg, full, settings)
    host = domain.host_of(who.sender)
    language, confidence = detect(text, subject, settings.language_threshold, settings.min_language_chars)
    free_mail = domain.is_free_mail(host, settings.free_mail_domains)
    buyer_country = country.buyer_country(country_clues(who, host, free_mail, text, signature, language))
    ranked = rank_products(subject, text, settings.products)
    return Inquiry(
        message_id=headers.message_id(msg),
        subject=subject,
        from_address=who.from_address,
        sender=who.sender,
        sender_name=who.sender_name,
        reply_to=who.reply_to,
        reply_to_name=who.reply_to_name,
        domain=domain.registered_domain(host),
        country=buyer_country.code,
        country_confidence=buyer_country.confidence,
        country_source=buyer_country.source,
        country_evidence=buyer_country.evidence,
        free_mail=free_mail,
        recipients=headers.recipients(msg),
        text=text,
        signature=signature,
        language=language,
        language_confidence=confidence,
        products=tuple(line.id for line in ranked),
        product_evidence=product_evidence(ranked),
        attachments=attachments(msg),
        date=headers.date(msg),
        headers=headers.header_map(msg),
        content_type=msg.get_content_type().lower(),
        company=who.company,
        via_form=who.via_form,
    )
