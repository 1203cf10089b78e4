"""What in a message can be trusted: a claim to be the router's own mail or a rep's, and where
replies should go. Pure: every function reads the Inquiry and plain settings.

Anyone can write any header. So the router's marker counts only with a valid signature
(mailrouter/marker.py); mail From a rep counts as the rep's only when our own mail server
vouches for it (its Authentication-Results header); a Reply-To is used only when it is not our
own address and does not redirect a known customer's replies elsewhere.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from mailrouter.marker import forgery
from mailrouter.model import ROUTER_HEADER, Inquiry, Outcome

# RFC 8601 results that say the From is genuine: DMARC (aligned with From) or an authenticated
# submission (method "auth", the sender logged in to our server).
_PASS = re.compile(r"(?:^|[;\s])(?:dmarc|auth)\s*=\s*pass\b", re.IGNORECASE)
# A forward's Message-ID (act/admit.py forward_message_id): "<mr.<key>.<rep>@<shared domain>>".
_FORWARD_ID = re.compile(r"<mr\.[0-9a-f]+\.[^@<>\s]+@([^<>\s]+)>")


@dataclass(frozen=True)
class Claim:
    """What a message's claim to come from us comes to: Ignored when it holds, else Unrecognized
    (the manager looks at it) with the reason."""

    outcome: Outcome
    reason: str


def router_claim(inquiry: Inquiry, key: bytes) -> Claim | None:
    """The router's own mail (a forward or notice come back) is ignored, so no loop can start;
    the marker without a valid signature is shown to the manager, neither ignored nor routed."""
    value = inquiry.headers.get(ROUTER_HEADER.lower())
    if value is None:
        return None
    why = forgery(key, inquiry.message_id, value)
    if why is None:
        return Claim(Outcome.IGNORED, "sent by mailrouter itself")
    return Claim(Outcome.UNRECOGNIZED, f"carries the {ROUTER_HEADER} marker, but {why}: not our own mail")


def vouched_by(inquiry: Inquiry, authserv_ids: frozenset[str]) -> str | None:
    """The trusted server whose Authentication-Results (the first, i.e. the one our server
    added last) says the From passed DMARC or was an authenticated submission."""
    value = inquiry.headers.get("authentication-results", "")
    server = value.split(";", 1)[0].strip().split(" ")[0].lower()
    return server if server in authserv_ids and _PASS.search(value.split(";", 1)[-1]) else None


def answers_our_forward(inquiry: Inquiry, own_domains: frozenset[str]) -> bool:
    """In-Reply-To/References name one of our forwards (an auto-reply to a forward does)."""
    refs = inquiry.headers.get("in-reply-to", "") + " " + inquiry.headers.get("references", "")
    return any(_in(domain.lower(), own_domains) for domain in _FORWARD_ID.findall(refs))


def _in(host: str, domains: frozenset[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def own_claim(inquiry: Inquiry, own_addresses: frozenset[str], own_domains: frozenset[str],
              authserv_ids: frozenset[str], auto_reply: bool) -> Claim | None:
    """Mail From one of our addresses. It is the rep's when our server vouches for it, or when
    it is an auto-reply to one of our forwards (the out-of-office that marks a rep away); from
    anywhere else it may be forged, so the manager sees it instead of it vanishing in Ignored."""
    address = inquiry.from_address.lower()
    if not address or address not in own_addresses:
        return None
    if server := vouched_by(inquiry, authserv_ids):
        return Claim(Outcome.IGNORED, f"from our own rep {address} (authenticated by {server})")
    if auto_reply and answers_our_forward(inquiry, own_domains):
        return Claim(Outcome.IGNORED, f"from our own rep {address} (auto-reply to our forward)")
    return Claim(Outcome.UNRECOGNIZED, f"From: our own address {address}, but not authenticated by our "
                 "mail server (classify.trusted_authserv_ids): possibly forged")


def is_own(address: str, own_addresses: frozenset[str], own_domains: frozenset[str]) -> bool:
    """One of our addresses, or any address at one of our mail domains."""
    address = address.lower()
    return address in own_addresses or _in(address.rpartition("@")[2], own_domains)


REPLY_TO_NOTE = "Check Reply-To 核对回复地址"  # the routing-block line that carries the warning


def never_a_customer(address: str, own_addresses: frozenset[str], own_domains: frozenset[str]) -> str | None:
    """Why `address` must not become a registry customer (it is ours), or None. Otherwise one
    web form naming a colleague makes the company's own domain a customer: colleagues' mail
    is then routed as re-inquiries and reps writing to colleagues raise 撞单 notices."""
    if is_own(address, own_addresses, own_domains):
        return f"{address} is our own address or at our own mail domain"
    return None


@dataclass(frozen=True)
class ReplyTarget:
    """Where the forward's Reply-To points, the display name that belongs to that address, and
    (when the message's own Reply-To was not used, or differs from a known customer's From) a
    warning for the rep and the address it concerns."""

    address: str
    name: str
    warning: str = ""
    suspect: str = ""  # the Reply-To address the warning is about; a reply there stops no clock


def reply_target(inquiry: Inquiry, own_addresses: frozenset[str], own_domains: frozenset[str],
                 known_customer: bool) -> ReplyTarget:
    """Reply-To when it can be trusted, else the buyer (`sender`) with the reason.

    An own address (a rep, a shared mailbox, our domain) is never used: the reply would come
    back to us and the buyer would get nothing. A Reply-To other than a known customer's From
    is how a forged "new bank details" mail redirects replies: the rep is shown both.
    """
    buyer, given = inquiry.sender, inquiry.reply_to
    if buyer in own_addresses:  # a web form naming a rep or a shared mailbox as the buyer
        buyer = ""
    if not given or given == inquiry.sender:
        return ReplyTarget(buyer, inquiry.sender_name)
    if is_own(given, own_addresses, own_domains):
        return ReplyTarget(buyer, inquiry.sender_name,
                           f"the message asked for replies to our own address {given}: not used. "
                           f"邮件要求回复到我方地址 {given}，未采用。")
    if known_customer:
        return ReplyTarget(buyer, inquiry.sender_name,
                           f"the message asks for replies to {given}, not to the known customer's "
                           f"address {buyer}: replies go to {buyer}; check with the customer before "
                           f"writing to {given}. 邮件要求回复到 {given}，而非该老客户的地址 {buyer}："
                           f"回复将发往 {buyer}；写信到 {given} 之前请先与客户核实。", suspect=given)
    return ReplyTarget(given, inquiry.reply_to_name)  # never the From's name on another address


def reply_note(target: ReplyTarget) -> dict[str, str]:
    """The routing-block line for the rep, when there is something to warn about."""
    return {REPLY_TO_NOTE: target.warning} if target.warning else {}
