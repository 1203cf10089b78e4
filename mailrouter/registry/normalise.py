"""Pure keys for recognising a customer: company-name keys, E.164 phones, signature reading."""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

from mailrouter.parse.text import fold

# Legal forms as token sequences after punctuation is removed ("S.r.l." -> s r l), stripped
# from the end of a name repeatedly ("Acme Co., Ltd." -> acme).
_LEGAL_SUFFIXES: tuple[tuple[str, ...], ...] = tuple(tuple(fold(s).split()) for s in (
    "ltd", "limited", "gmbh", "ag", "kg", "co kg", "ohg", "ug", "sa", "s a", "sl", "s l", "srl",
    "s r l", "spa", "s p a", "sas", "sarl", "llc", "l l c", "inc", "incorporated", "corp",
    "corporation", "co", "company", "bv", "b v", "nv", "n v", "ooo", "ооо", "sp z o o",
    "sp zoo", "pty", "plc", "lp", "llp", "ltda", "lda", "sdn bhd", "bhd", "pte", "pvt",
    "private", "kft", "sro", "s r o", "oy", "ab", "as", "a s", "aps", "se", "group", "holding",
    "holdings", "sociedad limitada", "sociedad anonima", "s a de c v", "sa de cv", "s de r l",
    "ltda", "eireli", "me", "srl", "sas", "s a s", "tbk", "pt", "ооо", "ао", "зао", "оао", "пао",
    "ип", "тоо", "лтд", "kk", "kabushiki kaisha", "yk", "gk", "株", "주", "주식회사", "유한회사",
    "株式会社", "有限会社", "合同会社", "jsc", "ojsc", "cjsc", "pjsc", "llp", "as", "asa",
))
# Legal forms written before the name ("ООО Ромашка", "PT Maju Jaya", "株式会社 トヨタ").
_LEGAL_PREFIXES = frozenset(fold(p) for p in {"ooo", "ооо", "oao", "оао", "zao", "зао", "ао", "pao", "пао", "ип",
                             "тоо", "pt", "cv", "the", "株", "주", "주식회사", "유한회사",
                             "株式会社", "有限会社", "合同会社"})  # folded: NFKD splits Hangul
# Chinese, Japanese and Korean forms are written without spaces, so they are stripped as text
# from the end (and the Japanese/Korean ones from the start), longest first.
_ZH_SUFFIXES = tuple(fold(s) for s in ("股份有限公司", "有限责任公司", "有限公司", "集团公司", "集团", "公司", "厂",
                "株式会社", "有限会社", "合同会社", "주식회사", "유한회사"))
_CJK_PREFIXES = tuple(fold(p) for p in ("株式会社", "有限会社", "合同会社", "주식회사", "유한회사"))
_MAX_SUFFIX = max(len(s) for s in _LEGAL_SUFFIXES)


def _tokens(name: str) -> list[str]:
    """Folded words; punctuation and symbols become spaces so "S.A." and "SA" both tokenise."""
    chars = [" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in fold(name)]
    return "".join(chars).split()


def _strip_zh(text: str) -> str:
    changed = True
    while changed:
        changed = False
        for suffix in _ZH_SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix):
                text, changed = text[: -len(suffix)], True
    return text


def _strip_legal(tokens: list[str]) -> list[str]:
    while len(tokens) > 1 and tokens[0] in _LEGAL_PREFIXES:
        tokens = tokens[1:]
    stripped = True
    while stripped:
        stripped = False
        for n in range(min(_MAX_SUFFIX, len(tokens) - 1), 0, -1):
            if tuple(tokens[-n:]) in _LEGAL_SUFFIXES:
                tokens, stripped = tokens[:-n], True
                break
    return tokens


def _strip_cjk_prefix(text: str) -> str:
    for prefix in _CJK_PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix):
            return text[len(prefix):]
    return text


@functools.lru_cache(maxsize=1 << 14)  # an import asks for one name three times per row
def company_key(name: str) -> str:
    """Case-, accent-, punctuation- and legal-form-insensitive key; "" for no name.

    Spaces are dropped too, so "Acme-Tech GmbH" and "AcmeTech" agree. A trailing name in
    another script ("SvetTechSnab LLC (ООО «СветТехСнаб»)") is left out: see company_names.
    """
    tokens = _strip_legal(_tokens(company_names(name)[0] if name else name))
    if tokens:
        tokens[0] = _strip_cjk_prefix(tokens[0])
        tokens[-1] = _strip_zh(tokens[-1])
    return "".join(tokens)


_TRAILING = re.compile(r"^(?P<main>.+?)\s*[(（](?P<other>[^()（）]+)[)）]\s*$")
_ALIAS_SPLIT = re.compile(r"[;；\n]+")


def company_names(text: str) -> tuple[str, ...]:
    """The name and, when written after it in brackets, its second name.

    "SvetTechSnab LLC (ООО «СветТехСнаб»)" names one company twice; "Huawei Technologies
    (Shenzhen) Co., Ltd." and "Acme Ltd (Shenzhen)" name one company once: the bracketed
    part counts only when it is the tail and carries a legal form or another script.
    """
    text = text.strip()
    found = _TRAILING.match(text)
    if not found:
        return (text,) if text else ()
    main, other = found["main"].strip(), found["other"].strip()
    if has_legal_form(other) or _script(other) != _script(main):
        return (main, other)
    return (text,)


def split_aliases(cell: str) -> tuple[str, ...]:
    """Names in one cell, separated by ; or ； or a new line (as Excel users type them)."""
    return tuple(dict.fromkeys(a.strip() for a in _ALIAS_SPLIT.split(cell) if a.strip()))


def _script(text: str) -> str:
    """The script of the first letter: LATIN, CYRILLIC, CJK, HANGUL, ... (by Unicode name)."""
    for ch in text:
        if ch.isalpha():
            return unicodedata.name(ch, "?").split()[0]
    return ""


def has_legal_form(name: str) -> bool:
    """True for "Acme GmbH" or "宏达有限公司": a line that names a company, not a person."""
    tokens = _tokens(name)
    return bool(tokens) and (len(_strip_legal(tokens)) < len(tokens)
                             or _strip_zh(tokens[-1]) != tokens[-1])


@dataclass(frozen=True)
class Phone:
    e164: str
    country: str | None  # ISO alpha-2 of the number, from phonenumbers


def _as_phone(number: phonenumbers.PhoneNumber) -> Phone:
    country = phonenumbers.region_code_for_number(number)
    return Phone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
                 country if country and country != "001" else None)


def normalise_phone(raw: str, region: str | None = None) -> Phone | None:
    """E.164 for a number as typed, or None when it is not a valid number.

    `region` (the sender's country) is needed for national numbers like "030 1234567".
    """
    text = raw.strip()
    if text.startswith("00"):  # international prefix used across Europe and China
        text = "+" + text[2:]
    phone = _parse_valid(text, region)
    if phone is None and text.isdigit() and len(text) >= 10:
        phone = _parse_valid("+" + text, None)  # a spreadsheet cell that lost its "+"
    return phone


def _parse_valid(text: str, region: str | None) -> Phone | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return _as_phone(number) if phonenumbers.is_valid_number(number) else None


def extract_phones(text: str, region: str | None = None) -> tuple[Phone, ...]:
    """Valid numbers written in free text (a signature), in order, without repeats."""
    found: dict[str, Phone] = {}
    for match in phonenumbers.PhoneNumberMatcher(text, region or "ZZ"):
        phone = _as_phone(match.number)
        found.setdefault(phone.e164, phone)
    return tuple(found.values())


_LABEL = re.compile(r"^\s*(company|firma|empresa|société|societe|公司|公司名称|单位)\s*[:：]\s*",
                    re.IGNORECASE)
# Labelled contact lines ("Tel: +49 ...", "地址：..."), but not "Mobil Oil GmbH".
_NOT_A_NAME = re.compile(r"@|https?://|www\.|\d{6,}|^\W*(tel|phone|fax|mob|mobile|cell|"
                         r"whatsapp|wechat|skype|email|e-mail|add|address|电话|手机|传真|地址)"
                         r"\b\.?\s*([:：]|[+(]|\d)", re.IGNORECASE)


def company_candidates(signature: str, company: str | None = None, tail: str = "") -> tuple[str, ...]:
    """Lines that may name the sender's company, most likely first.

    A form's company field comes first, then labelled lines, then any short line of the
    signature (and of the tail of the body): the phone must agree as well, so being generous
    here costs nothing but a comparison.
    """
    result: list[str] = [company] if company else []
    lines = [ln.strip() for ln in (signature + "\n" + tail).splitlines()]
    labelled = [_LABEL.sub("", ln) for ln in lines if _LABEL.match(ln)]
    plain = [ln for ln in lines if 2 <= len(ln) <= 80 and not _NOT_A_NAME.search(ln)]
    for line in labelled + plain:
        # "Einkauf, Becker Elektronik GmbH", "Purchasing | Acme Ltd": a title and the company
        for part in (line, *(p.strip() for p in _LINE_PARTS.split(line))):
            if len(part) >= 2 and part not in result:
                result.append(part)
    return tuple(result)


_LINE_PARTS = re.compile(r"\s*[,|·•/–—]\s*|\s+-\s+")
