"""Replies built from a received message the way three mail clients build them, for tests that
check what a buyer gets back when a rep hits Reply on a forward.

What each client does (from their reply composers, as a user sees it):
- Outlook: "RE: " + subject; the answer, a rule, then a From/Sent/To/Subject block and the
  original text unquoted.
- Thunderbird: "Re: " + subject; the answer, then "On <date>, <From display> wrote:" and the
  original text quoted with "> ".
- Foxmail (Chinese UI): "回复：" + subject; the answer, then a "原始邮件" block with
  发件人/发送时间/收件人/主题 and the original text unquoted.
Every client answers to Reply-To when there is one, else From, and threads with
In-Reply-To/References. A subject already starting with a reply prefix gets no second one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parsedate_to_datetime

CLIENTS = ("outlook", "thunderbird", "foxmail")
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|回复|答复)\s*[:：]", re.IGNORECASE)


@dataclass(frozen=True)
class Style:
    prefix: str  # put before the subject
    rule: str  # the line that opens the quoted part ("" for none)
    labels: tuple[str, str, str, str]  # From, Sent, To, Subject as the client writes them ("" : attribution)
    quote: str  # put before each quoted line


STYLES = {
    "outlook": Style("RE: ", "________________________________", ("From", "Sent", "To", "Subject"), ""),
    "thunderbird": Style("Re: ", "", ("", "", "", ""), "> "),
    "foxmail": Style("回复：", "------------------ 原始邮件 ------------------", ("发件人", "发送时间", "收件人", "主题"), ""),
}


def reply_subject(client: str, subject: str) -> str:
    subject = " ".join(subject.split())
    return subject if _REPLY_PREFIX.match(subject) else STYLES[client].prefix + subject


def quote_header(client: str, received: EmailMessage) -> str:
    """The lines a client puts between the answer and the quoted original."""
    style = STYLES[client]
    sender, date = str(received["From"]), str(received["Date"])
    if client == "thunderbird":
        when = parsedate_to_datetime(date).strftime("%m/%d/%Y %H:%M")
        return f"On {when}, {received['From'].addresses[0].display_name or sender} wrote:"
    values = (sender, date, str(received["To"]), " ".join(str(received["Subject"]).split()))
    lines = [f"{label}: {value}" for label, value in zip(style.labels, values, strict=True)]
    return "\n".join([style.rule, *lines])


def _quoted_text(client: str, received: EmailMessage) -> str:
    part = received.get_body(("plain",))
    text = part.get_content() if part is not None else ""
    prefix = STYLES[client].quote
    return "\n".join(prefix + line if prefix else line for line in text.splitlines())


def build_reply(client: str, received: EmailMessage, sender: str, answer: str) -> EmailMessage:
    """The reply `client` would send from `sender` to `received`, with `answer` on top."""
    reply = EmailMessage(policy=SMTP)
    reply["From"] = sender
    reply["To"] = str(received["Reply-To"] or received["From"])
    reply["Subject"] = reply_subject(client, str(received["Subject"]))
    reply["Date"] = format_datetime(parsedate_to_datetime(str(received["Date"])))
    reply["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    reply["In-Reply-To"] = str(received["Message-ID"])
    reply["References"] = " ".join(filter(None, (str(received["References"] or ""), str(received["Message-ID"]))))
    reply.set_content(f"{answer}\n\n{quote_header(client, received)}\n\n{_quoted_text(client, received)}\n")
    return reply
