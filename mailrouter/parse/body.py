"""The body as plain text, with quoted history and the signature split off."""
from __future__ import annotations

import re
from email.message import Message

from inscriptis import get_text
from mailparser_reply.parser import EmailMessage

from mailrouter.parse.attachments import is_attachment, leaf_parts
from mailrouter.parse.text import decode_bytes

TEXT_LIMIT = 100_000  # characters considered; an inquiry never needs more
PART_BYTES_LIMIT = 2_000_000  # raw bytes decoded per part, before the text limit applies
HTML_LIMIT = 1_000_000  # markup is bulky; cut before conversion, not after
# Every language mail-parser-reply knows: buyers quote their own clients' headers.
REPLY_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pl", "sv", "da", "cs", "zh", "ja", "ko")

_TAG = re.compile(r"<[^>]*>")
# Separators of forwarded/quoted mail the reply parser does not know (Chinese and Russian
# clients especially); everything from here on is history.
_HISTORY_MARK = re.compile(
    r"^\s*-{2,}\s*(?:original message|original|forwarded message|原始邮件|转发邮件|"
    r"исходное сообщение|пересылаемое сообщение|mensaje original|mensagem original|"
    r"message d'origine|ursprüngliche nachricht|messaggio originale|oorspronkelijk bericht)"
    r"\s*-{2,}\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def _text_parts(msg: Message) -> tuple[list[str], list[str]]:
    plain: list[str] = []
    html: list[str] = []
    for part in leaf_parts(msg):
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html") or is_attachment(part):
            continue
        (plain if kind == "text/plain" else html).append(_decode_part(part))
    return plain, html


def _decode_part(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True) or b""
    except Exception:
        return ""
    if not isinstance(payload, bytes):
        return ""
    return decode_bytes(payload[:PART_BYTES_LIMIT], part.get_content_charset())


def html_to_text(html: str) -> str:
    try:
        return get_text(html[:HTML_LIMIT])
    except Exception:  # a broken document still has words worth routing on
        return _TAG.sub(" ", html[:HTML_LIMIT])


def full_text(msg: Message) -> str:
    """The whole body as text: text/plain preferred, else HTML converted; capped."""
    plain, html = _text_parts(msg)
    text = "\n".join(p for p in plain if p.strip()).strip()
    if not text and html:
        text = "\n".join(html_to_text(h) for h in html).strip()
    return text.replace("\r\n", "\n").replace("\r", "\n")[:TEXT_LIMIT]


def split_reply(text: str) -> tuple[str, str]:
    """(new text, signature): quoted history dropped, signature split off."""
    text = _HISTORY_MARK.split(text, maxsplit=1)[0][:REPLY_TEXT_LIMIT]
    guarded, long_lines = _hide_long_lines(text)
    try:
        # keep_hyphen_lists: buyers write "- 500 pcs ..." lists, which are not signatures.
        parsed = EmailMessage(text=guarded, languages=list(REPLY_LANGUAGES), keep_hyphen_lists=True)
        replies = parsed.read().replies
    except Exception:  # the reply parser's regexes must never cost us the message
        return drop_quoted(text), ""
    for reply in replies:
        body = drop_quoted(_restore_long_lines(reply.body, long_lines))
        if body:
            return body, _restore_long_lines(reply.signatures, long_lines)
    return "", ""


# mail-parser-reply's English "On ... wrote:" pattern is quadratic in a line's length (100,000
# characters of "On On On" took 220 s). A "wrote:" line is short: longer lines are shown to it
# as a placeholder word and put back afterwards, and it reads at most REPLY_TEXT_LIMIT
# characters (the new text of an inquiry comes first), so its cost stays under a second.
REPLY_TEXT_LIMIT = 20_000
REPLY_LINE_LIMIT = 500
_PLACEHOLDER = re.compile(r"mrlongline(\d+)x")


def _hide_long_lines(text: str) -> tuple[str, list[str]]:
    lines = text.split("\n")
    hidden: list[str] = []
    for index, line in enumerate(lines):
        if len(line) > REPLY_LINE_LIMIT:
            lines[index] = f"mrlongline{len(hidden)}x"
            hidden.append(line)
    return ("\n".join(lines) if hidden else text), hidden


def _restore_long_lines(text: str, hidden: list[str]) -> str:
    if not hidden:
        return text
    return _PLACEHOLDER.sub(lambda m: hidden[int(m.group(1))] if int(m.group(1)) < len(hidden) else m.group(), text)


def drop_quoted(text: str) -> str:
    """Remove "> " quoted lines and the "... wrote:" line that introduces them."""
    kept: list[str] = []
    quoting = False
    for line in text.split("\n"):
        quoted = line.lstrip().startswith(">")
        if quoted and not quoting:
            _drop_attribution(kept)
        quoting = quoted
        if not quoted:
            kept.append(line)
    return "\n".join(kept).strip()


def _drop_attribution(kept: list[str]) -> None:
    while kept and not kept[-1].strip():
        kept.pop()
    if kept and kept[-1].rstrip().endswith((":", "：")):
        kept.pop()
