"""Jinja2 environment and per-language template lookup for the mail the router writes."""
from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime as babel_datetime

DEFAULT_LANGUAGE = "en"

# Language codes as config and langdetect write them ("zh", "zh-cn", "pt_BR"); anything else
# (say a path) never reaches the loader.
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:[-_][a-z0-9]{2,8})?")


def make_environment(template_dirs: Path | Sequence[Path]) -> jinja2.Environment:
    """Strict (a missing variable is an error, not a blank) and HTML-escaping for .html.j2.

    Several folders are searched in order per template (overrides first, packaged last)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dirs),
        undefined=jinja2.StrictUndefined,
        auto_reload=False,  # no stat() per render; SIGHUP builds a new environment
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "html.j2"),
            disabled_extensions=("txt", "txt.j2"),
            default_for_string=False,
            default=False,
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["filesize"] = filesize
    return env


def filesize(size: int) -> str:
    """Human-readable size, the same in every language ("980 B", "12.3 KB", "4.0 MB")."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


# How Outlook (en) and Foxmail (zh) write the date of a forwarded or quoted message.
_LONG_DATE = {"en": "EEEE, MMMM d, y h:mm a", "zh": "y年M月d日(EEEE) ah:mm"}


def _locale(language: str | None) -> Locale:
    for code in candidate_languages(language):
        try:
            return Locale.parse(code.replace("-", "_"))
        except (ValueError, UnknownLocaleError):
            continue
    return Locale.parse(DEFAULT_LANGUAGE)


def country_name(code: str | None, language: str | None) -> str:
    """"DE" -> "Germany" / "德国"; the code itself when Babel does not know it; "" for none."""
    return _locale(language).territories.get((code or "").upper(), code or "") if code else ""


def language_name(code: str | None, language: str | None) -> str:
    """"de" -> "German" / "德语"."""
    return _locale(language).languages.get((code or "").lower(), code or "") if code else ""


def long_datetime(when: datetime, language: str | None) -> str:
    """The date line of a forwarded-message block, as the rep's mail client would write it."""
    locale = _locale(language)
    return babel_datetime(when, _LONG_DATE.get(locale.language, _LONG_DATE["en"]), locale=locale)


def candidate_languages(language: str | None) -> list[str]:
    """"zh-CN" -> ["zh-cn", "zh", "en"]: the exact code, its primary subtag, then the default."""
    code = (language or "").strip().lower()
    candidates = []
    if _LANGUAGE.fullmatch(code):
        candidates += [code.replace("_", "-"), re.split(r"[-_]", code)[0]]
    candidates.append(DEFAULT_LANGUAGE)
    return list(dict.fromkeys(candidates))


def render(env: jinja2.Environment, name: str, language: str | None, /, **ctx: object) -> str:
    """Render `<language>/<name>`, falling back to English when that language lacks it.

    Positional-only, so templates may use `language` (the buyer's) and `name` as variables.
    """
    template = env.select_template([f"{code}/{name}" for code in candidate_languages(language)])
    return template.render(**ctx)
