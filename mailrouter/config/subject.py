"""The forward's subject and its internal labels, compiled once by the grammar that renders them.

The subject is what the buyer gets back when a rep hits Reply, so it is the buyer's own plus at
most the company's customer-facing tag (`forward.customer_tag`, placed left or right, or not at
all). Internal labels (re-inquiry, country, products, rule) have their own format,
`forward.labels`, shown to the rep in the forward's body and headers only (issue 15 item 1).

The grammar: `{field}` is replaced by the field's value; a field wrapped in [ ], ( ) or 【 】
disappears together with its brackets when empty (so no "[]" is left); `{{` and `}}` are
literal braces. Anything else with a brace (a format spec `{country:>4}`, a conversion
`{subject!r}`, a lone `{`) is refused when the config is read, instead of reaching a rep's
subject line as literal text. Validation and rendering share one parse, so they cannot disagree.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

SUBJECT_FIELDS = ("subject", "country", "products", "language", "domain", "company", "rule", "rep",
                  "team", "tier", "reinquiry")
MAX_SUBJECT_CHARS = 200

_TOKEN = re.compile(
    r"\{\{|\}\}|\[\{(?P<square>\w+)\}\]|\(\{(?P<round>\w+)\}\)|【\{(?P<cjk>\w+)\}】|\{(?P<bare>\w+)\}|[{}]"
)


@dataclass(frozen=True)
class Field:
    name: str
    before: str = ""  # the bracket wrapped round it, dropped with an empty value
    after: str = ""


Part = str | Field


@dataclass(frozen=True)
class SubjectFormat:
    text: str
    parts: tuple[Part, ...]

    @classmethod
    def compile(cls, text: str) -> SubjectFormat:
        """Parse `text`; ValueError names the first bad placeholder and the valid forms."""
        parts: list[Part] = []
        pos = 0
        for m in _TOKEN.finditer(text):
            if m.start() > pos:
                parts.append(text[pos:m.start()])
            pos = m.end()
            token = m[0]
            if token in ("{{", "}}"):
                parts.append(token[0])
                continue
            if token in ("{", "}"):
                raise ValueError(f"{_context(text, m.start())}: a brace that is not a field; fields are "
                                 f"{_known()} with no format spec or conversion, and {{{{ or }}}} is a "
                                 "literal brace")
            name = m[m.lastgroup or "bare"]
            if name not in SUBJECT_FIELDS:
                raise ValueError(f"unknown field {{{name}}}; known: {_known()}")
            wrapped = m.lastgroup != "bare"
            parts.append(Field(name, token[0] if wrapped else "", token[-1] if wrapped else ""))
        if pos < len(text):
            parts.append(text[pos:])
        return cls(text, tuple(parts))

    def render(self, values: Mapping[str, str], max_length: int = MAX_SUBJECT_CHARS,
               empty: str = "(no subject)") -> str:
        """Fill the fields: one line, whitespace collapsed, at most max_length characters;
        `empty` when nothing is left."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif values.get(part.name):
                out.append(f"{part.before}{values[part.name]}{part.after}")
        subject = " ".join("".join(out).split()) or empty
        if len(subject) > max_length:
            subject = subject[: max_length - 1].rstrip() + "…"
        return subject

    def __str__(self) -> str:
        return self.text


DEFAULT_SUBJECT_FORMAT = SubjectFormat.compile("{subject}")
DEFAULT_LABELS = SubjectFormat.compile("[{reinquiry}][{country}][{products}]")
TAG_PLACEMENTS = ("left", "right", "none")
MAX_TAG_CHARS = 40


def customer_subject(tag: str, placement: str) -> SubjectFormat:
    """The forward's subject: the buyer's, with the customer-facing tag left or right of it.
    `tag` is validated by the caller (tag_problem): plain text, no braces."""
    if not tag or placement == "none":
        return DEFAULT_SUBJECT_FORMAT
    return SubjectFormat.compile(f"{tag} {{subject}}" if placement == "left" else f"{{subject}} {tag}")


def tag_problem(tag: str) -> str | None:
    """Why `tag` cannot be the customer-facing tag, or None. The buyer sees it on every reply,
    so it is fixed text: no placeholder (an internal label could hide in one), one short line."""
    if any(c in tag for c in "{}"):
        return "fixed text the buyer sees on every reply; placeholders ({...}) belong in forward.labels"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in tag):
        return "one line of text: no control characters or line breaks"
    if len(tag) > MAX_TAG_CHARS:
        return f"{len(tag)} characters; at most {MAX_TAG_CHARS}, it is added to every subject"
    return None


def labels_of_legacy(text: str) -> str:
    """An old `forward.subject_format` as a labels format: the same fields without {subject}."""
    return " ".join(text.replace("{subject}", " ").split())


def _known() -> str:
    return " ".join("{" + name + "}" for name in SUBJECT_FIELDS)


def _context(text: str, at: int) -> str:
    return f"at {text[max(0, at - 8):at + 12]!r}"
