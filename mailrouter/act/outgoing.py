"""The one composer of everything the router sends: what our mail looks like is answered here.

`queue_forward` - an inquiry to its rep (first routing, manual assignment, reassignment) - and
`queue_notice` - remind, escalate, reassign notices, collisions, digests - own the header policy,
the subject format, the sender mailbox and the retry deadline; callers say only what and to whom.
Both queue an outbox row in the caller's transaction; nothing is sent before it commits.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

import jinja2
from sqlalchemy import insert
from sqlalchemy.orm import Session

from mailrouter.act.forward import ForwardSpec, clean_header_text, tag_labels, tag_subject
from mailrouter.act.original import Original
from mailrouter.config.schema import Config, MailboxConfig, RepConfig
from mailrouter.decide.trust import ReplyTarget, reply_note, reply_target
from mailrouter.marker import signed
from mailrouter.model import ROUTER_HEADER, Decision, Inquiry
from mailrouter.store import OutboxRow, table_of

# Built once: constructing a statement per message cost more than executing it (issue 7).
_INSERT_OUTBOX = insert(table_of(OutboxRow))


def mark_automatic(msg: EmailMessage, router_value: str, key: bytes) -> None:
    """RFC 3834 Auto-Submitted for well-behaved responders, X-Auto-Response-Suppress for Exchange
    (which ignores RFC 3834), and the router header, signed over the Message-ID (set it first),
    so the router knows its own mail and nobody else can claim to be it."""
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg[ROUTER_HEADER] = signed(key, str(msg["Message-ID"] or ""), router_value)


def forward_message_id(key: str, rep: str, shared_address: str) -> str:
    """Deterministic, so a forward re-sent after a crash carries the same Message-ID."""
    domain = shared_address.rpartition("@")[2] or "mailrouter.invalid"
    return f"<mr.{key[:24]}.{rep}@{domain}>"


def mailbox_named(config: Config, name: str) -> MailboxConfig:
    return next(m for m in config.mailboxes if m.name == name)


def notice_sender(config: Config, mailbox: MailboxConfig | None = None) -> MailboxConfig:
    """Notices about one message come from its shared mailbox; the rest from the first one."""
    return mailbox or config.mailboxes[0]


def deadline(config: Config, now: datetime) -> datetime:
    """The last moment a temporary SMTP failure is retried; then the mail is given up."""
    return now + timedelta(seconds=config.smtp.retry_deadline)


@dataclass(frozen=True)
class Forward:
    message_id: str
    outbox_values: dict
    reply: ReplyTarget  # where the forward's Reply-To points (decide/trust.py), and any warning


def compose_forward(config: Config, templates: jinja2.Environment, mailbox: MailboxConfig, rep: RepConfig,
                    content_key: str, inquiry: Inquiry, decision: Decision, original: Original,
                    now: datetime, *, known_customer: bool = False) -> Forward:
    """The forward's outbox row, not yet written. Raises ForwardError when it cannot be built
    (no address a Reply could reach): the caller decides what the message becomes instead.

    The header policy: the router marker signed with the installation's key (mailrouter/marker.py);
    the Reply-To as decide/trust.reply_target allows (never our own address; a known customer's
    replies not redirected elsewhere), with a warning line for the rep when it was not used."""
    fwd_id = forward_message_id(content_key, rep.id, mailbox.address)
    reply = reply_target(inquiry, config.own_addresses, config.own_domains, known_customer)
    spec = ForwardSpec(
        shared_address=mailbox.address, shared_name=mailbox.display_name, rep_address=rep.email,
        rep_name=rep.name, message_id=fwd_id, subject=tag_subject(config.subject_format, inquiry, decision),
        language=rep.language, extra=dict(decision.notes) | reply_note(reply),
        labels=tag_labels(config.labels, inquiry, decision), marker_key=config.marker_key, reply=reply)
    content = original.forward(inquiry, decision, spec, templates, now.astimezone(config.timezone))
    return Forward(fwd_id, dict(mailbox=mailbox.name, kind="forward", sender=mailbox.address,
                                recipient=rep.email, **content, next_attempt_at=now,
                                deadline=deadline(config, now)), reply)


def queue_forward(session: Session, message: int, forward: Forward) -> None:
    """Queue a composed forward of message row `message` (see compose_forward)."""
    session.execute(_INSERT_OUTBOX, dict(forward.outbox_values, message=message))


_MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")


def is_message_id(value: str) -> bool:
    """One <local@domain> and nothing else: whatever goes into a header must be that."""
    return bool(_MESSAGE_ID.fullmatch(value))


def notice_email(mailbox: MailboxConfig, to: str, subject: str, body: str, message_id: str, now: datetime,
                 key: bytes, router_value: str = "notice", html: str | None = None,
                 thread_on: str | None = None) -> bytes:
    """A notice from the shared mailbox, marked so no auto-responder answers it and the router
    never routes it (its router header signed with `key`); `subject` may hold customer text,
    so it passes the header gate.
    `thread_on` is the forward's Message-ID: the rep's client then shows the notice under
    the inquiry it is about, instead of quoting an id nobody can search for."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"{clean_header_text(mailbox.display_name)} <{mailbox.address}>"
    msg["To"] = to
    msg["Subject"] = clean_header_text(subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    if thread_on and is_message_id(thread_on):
        msg["In-Reply-To"] = msg["References"] = thread_on
    mark_automatic(msg, router_value, key)
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def queue_notice(session: Session, config: Config, to: str, subject: str, body: str, message_id: str,
                 now: datetime, *, kind: str = "notice", mailbox: MailboxConfig | None = None,
                 message: int | None = None, html: str | None = None, thread_on: str | None = None) -> None:
    """Queue a notice (remind, escalate, reassign, collision, digest) to `to`. `message_id` is
    deterministic per notice, so a retried one is recognisably the same mail; `kind` goes into
    the router header (e.g. "digest; daily")."""
    sender = notice_sender(config, mailbox)
    payload = notice_email(sender, to, subject, body, message_id, now.astimezone(config.timezone),
                           config.marker_key, kind, html, thread_on)
    session.add(OutboxRow(mailbox=sender.name, kind="notice", message=message, sender=sender.address,
                          recipient=to, payload=payload, next_attempt_at=now, deadline=deadline(config, now)))
