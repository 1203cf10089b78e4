"""Free-mail providers: a buyer writing from one of these tells us nothing by their domain."""
from __future__ import annotations

_YAHOO = ("com", "co.uk", "fr", "de", "es", "it", "com.br", "co.in", "com.ar", "com.mx",
          "co.jp", "com.tw", "com.hk", "com.sg", "com.au", "ca", "co.id", "com.vn", "com.tr")
_HOTMAIL = ("com", "co.uk", "fr", "de", "es", "it", "com.br", "com.ar", "co.jp", "be", "nl")
_OUTLOOK = ("com", "fr", "de", "es", "it", "com.br", "jp", "co.uk", "sa", "in")

DEFAULT_FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    [f"yahoo.{s}" for s in _YAHOO]
    + [f"hotmail.{s}" for s in _HOTMAIL]
    + [f"outlook.{s}" for s in _OUTLOOK]
    + [
        "gmail.com", "googlemail.com", "ymail.com", "rocketmail.com", "live.com", "live.co.uk",
        "live.fr", "live.de", "msn.com", "aol.com", "icloud.com", "me.com", "mac.com",
        "mail.ru", "bk.ru", "list.ru", "inbox.ru", "internet.ru", "yandex.ru", "yandex.com",
        "ya.ru", "rambler.ru", "ukr.net", "gmx.de", "gmx.net", "gmx.at", "gmx.ch", "gmx.com",
        "web.de", "t-online.de", "freenet.de", "163.com", "126.com", "yeah.net", "qq.com",
        "foxmail.com", "sina.com", "sina.cn", "sohu.com", "aliyun.com", "139.com", "naver.com",
        "daum.net", "hanmail.net", "rediffmail.com", "protonmail.com", "proton.me", "pm.me",
        "zoho.com", "mail.com", "libero.it", "virgilio.it", "tiscali.it", "orange.fr",
        "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr", "seznam.cz", "centrum.cz", "wp.pl",
        "o2.pl", "onet.pl", "interia.pl", "abv.bg", "tutanota.com", "hushmail.com", "bol.com.br",
        "uol.com.br", "terra.com.br", "btinternet.com", "comcast.net", "verizon.net",
        "att.net", "sbcglobal.net", "bigpond.com", "xtra.co.nz", "hotmail.ca",
    ]
)
