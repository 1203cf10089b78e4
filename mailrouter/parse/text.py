"""Text helpers shared by the parse modules: charset lookup and single-line sanitising."""
from __future__ import annotations

import codecs
import re
import unicodedata

# Charset labels seen in the wild that Python's codec registry does not know, or knows as a
# narrower table than the sender's client used (GBK/GB2312 mail is really written in CP936).
_CHARSET_ALIASES = {
    "x-gbk": "gb18030",
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "x-gb2312": "gb18030",
    "cp936": "gb18030",
    "windows-936": "gb18030",
    "x-windows-936": "gb18030",
    "ks_c_5601-1987": "cp949",
    "x-sjis": "shift_jis",
    "x-mac-cyrillic": "mac_cyrillic",
    "utf8": "utf-8",
    # The stdlib's label for raw 8-bit header bytes: no charset was declared.
    "x-unknown": "",
    "unknown-8bit": "",
}

# Bidi overrides can make a subject or file name display as something else.
_BIDI_CONTROLS = dict.fromkeys(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F], None
)
_SPACES = re.compile(r"\s+")
# Codecs Python knows that are not mail charsets: a label naming one is junk (or hostile), and
# decoding with it raises or turns text into escapes; such text is decoded as undeclared.
_NOT_CHARSETS = frozenset({
    "idna", "undefined", "punycode", "raw-unicode-escape", "unicode-escape", "charmap",
    "mbcs", "oem", "palmos",
})


def codec_for(charset: str | None) -> str:
    """Map a MIME charset label to a Python codec name, or "" when undeclared or unknown."""
    label = (charset or "").strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    if not label:
        return ""
    try:
        info = codecs.lookup(label)
    except LookupError:
        return ""
    # bytes-to-bytes codecs (zip, base64, hex, uu, quopri, bz2, rot13) say so in this flag
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return ""
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset; undeclared 8-bit text is tried as UTF-8, then GB18030."""
    codec = codec_for(charset)
    if codec:
        try:
            return data.decode(codec, errors="replace")
        except (UnicodeError, LookupError, ValueError):  # a codec refusing "replace" (utf-7 ...)
            pass
    # Undeclared 8-bit text reaching this mailbox most often comes from Chinese clients.
    for guess in ("utf-8", "gb18030"):
        try:
            return data.decode(guess)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def one_line(value: str, limit: int = 998) -> str:
    """Collapse to one line without control characters, so it is safe in logs and headers."""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
        for ch in value.translate(_BIDI_CONTROLS)
    )
    return _SPACES.sub(" ", cleaned).strip()[:limit]


def fold(value: str) -> str:
    """Case- and accent-insensitive form for matching: NFKD, combining marks dropped, casefold."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def restore_surrogates(value: str) -> str:
    """Undo the stdlib's surrogateescape of raw 8-bit bytes by decoding them as real text."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("utf-8", errors="surrogateescape"), None)
