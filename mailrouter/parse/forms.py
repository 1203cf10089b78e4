"""Mail relayed by a web form or B2B platform: find the buyer it names."""
from __future__ import annotations

import re
from dataclasses import dataclass

from mailrouter.model import FormSender

from mailrouter.parse.countries import country_code
from mailrouter.parse.headers import clean_address
from mailrouter.parse.text import one_line

_FIELD_LABELS: dict[str, tuple[str, ...]] = {
    "email": ("e-mail", "email", "email address", "邮箱", "电子邮件", "电子邮箱"),
    "company": ("company", "company name", "公司", "公司名称"),
    "country": ("country", "country/region", "国家", "国家/地区"),
    "name": ("name", "full name", "contact name", "contact person", "姓名", "联系人"),
}
_EMAIL_IN_TEXT = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class FormFields:
    email: str = ""
    company: str | None = None
    country: str | None = None
    name: str = ""


def find_form_sender(address: str, senders: tuple[FormSender, ...]) -> FormSender | None:
    """The configured robot this address belongs to: exact address or "@domain" (subdomains too)."""
    host = address.rpartition("@")[2]
    for sender in senders:
        for pattern in sender.addresses:
            pattern = pattern.strip().lower()
            if pattern.startswith("@"):
                if host == pattern[1:] or host.endswith("." + pattern[1:]):
                    return sender
            elif address == pattern:
                return sender
    return None


def _label_pattern(labels: tuple[str, ...]) -> re.Pattern[str]:
    names = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    # A label at the start of a line (after list bullets or bold markers), then ":" or "：".
    return re.compile(rf"^[ \t*•\-|]*(?:{names})[ \t*]*[:：][ \t*]*(.+)$", re.I | re.M)


_PATTERNS = {field: _label_pattern(labels) for field, labels in _FIELD_LABELS.items()}


def labelled(text: str, field: str) -> str:
    """The first non-blank value labelled as `field` in a form's body, on one line."""
    for match in _PATTERNS[field].finditer(text):
        value = one_line(match.group(1).strip(" |*"), 200)
        if value:
            return value
    return ""


def read_fields(text: str) -> FormFields:
    email_match = _EMAIL_IN_TEXT.search(labelled(text, "email"))
    country = labelled(text, "country")
    return FormFields(
        email=clean_address(email_match.group()) if email_match else "",
        company=labelled(text, "company") or None,
        country=country_code(country) if country else None,
        name=labelled(text, "name"),
    )
