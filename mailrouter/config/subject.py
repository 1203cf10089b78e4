"""`forward.subject_format`, compiled once by the grammar that renders it.

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

    def render(self, values: Mapping[str, str], max_length: int = MAX_SUBJECT_CHARS) -> str:
        """Fill the fields: one line, whitespace collapsed, at most max_length characters."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif values.get(part.name):
                out.append(f"{part.before}{values[part.name]}{part.after}")
        subject = " ".join("".join(out).split()) or "(no subject)"
        if len(subject) > max_length:
            subject = subject[: max_length - 1].rstrip() + "…"
        return subject

    def __str__(self) -> str:
        return self.text


DEFAULT_SUBJECT_FORMAT = SubjectFormat.compile("[{reinquiry}][{country}][{products}] {subject}")


def _known() -> str:
    return " ".join("{" + name + "}" for name in SUBJECT_FIELDS)


def _context(text: str, at: int) -> str:
    return f"at {text[max(0, at - 8):at + 12]!r}"
