"""Hostile and malformed mail for the replay benchmark (bench/replay.py) and tests: deterministic,
written for this project after the cases of the hostile-mail review (issue 14).

Every hostile message is followed by an ordinary inquiry, its *sentinel*: the replay measures
whether the sentinel is forwarded within the usual latency while the hostile one is handled,
which is what "one message never holds up others" means to a buyer. Injection attempts use the
header name `X-Injected`: a forward carrying it anywhere in its own header block got a header
from customer text.

Sets:
  main    header injection (encoded CR/LF in Subject and display name, raw bare CR), 20,000
          header lines, 50,000 continuation lines, 1 MiB single-line header, 400-level nested
          multipart, NUL bytes, invalid UTF-8, junk and non-text charset labels, 10,000 nested
          HTML elements, no final newline, impossible dates, a forged router marker
  poison  messages over 2 MiB (the spool path) whose MIME headers are junk: an RFC 2047 file name
          in charset "zip", a raw 8-bit boundary, an RFC 2231 non-ASCII boundary
  slow    CPU cost: 100,000 characters of "On On On" (reply stripping), 2.1 MiB nesting 6,000
          multiparts around 420,000 boundary-like lines (the stream reducer)
  memory  120 ordinary inquiries of 1.9 MiB each, just under the spool threshold
"""
from __future__ import annotations

import base64
import random
from dataclasses import dataclass

SHARED = "sales@example.com"
INQUIRY = ("Dear Sales team,\r\n\r\nWe would like a quotation for 2,000 pcs of stainless steel ball "
           "valves DN50 PN16, delivery CIF Hamburg. Please include lead time.\r\n\r\n"
           "Best regards,\r\nKlaus Weber\r\nPurchasing, Weber Armaturen GmbH\r\n+49 40 1234567\r\n")


@dataclass(frozen=True)
class Hostile:
    case: str
    raw: bytes
    sentinel: bool = False  # an ordinary inquiry that follows a hostile one


def _headers(n: int, case: str, subject: str = "Inquiry", sender: str | None = None,
             extra: str = "") -> str:
    sender = sender or f"Buyer {n} <buyer{n}@weber-armaturen.de>"
    return (f"From: {sender}\r\nTo: {SHARED}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 30 Nov 2026 09:{n % 60:02d}:00 +0100\r\nMessage-ID: <hostile{n}.{case}@weber-armaturen.de>\r\n"
            f"X-Hostile-Case: {case}\r\nMIME-Version: 1.0\r\n{extra}")


def _plain(n: int, case: str, body: str = INQUIRY, subject: str = "Inquiry", sender: str | None = None,
           extra: str = "") -> bytes:
    return (_headers(n, case, subject, sender, extra) + "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            + body).encode()


def _ew(text: str) -> str:
    return "=?utf-8?B?" + base64.b64encode(text.encode()).decode() + "?="


def sentinel(n: int) -> Hostile:
    return Hostile(f"sentinel-{n}", _plain(n, "sentinel", subject=f"RFQ ball valves DN50 (ref {n})",
                                           sender=f"Klaus Weber <k.weber{n}@weber-armaturen.de>"), sentinel=True)


def _nested(depth: int, leaf: str) -> str:
    body = f"Content-Type: text/plain; charset=utf-8\r\n\r\n{leaf}\r\n"
    for level in range(depth):
        b = f"n{level}"
        body = f'Content-Type: multipart/mixed; boundary="{b}"\r\n\r\n--{b}\r\n{body}--{b}--\r\n'
    return body


def main_set() -> list[tuple[str, bytes]]:
    rng = random.Random(14)
    cases: list[tuple[str, str, str, str]] = [  # (case, subject, extra headers, body)
        ("subject-crlf", _ew("Quote\r\nX-Injected: subject"), "", INQUIRY),
        ("name-crlf", "Inquiry", "", INQUIRY),
        ("bare-cr", "Quote\rX-Injected: bare-cr", "", INQUIRY),
        ("many-headers", "Inquiry", "".join(f"X-Trace-{i}: hop {i}\r\n" for i in range(20_000)), INQUIRY),
        ("continuations", "Inquiry" + "".join(f"\r\n  part {i}" for i in range(50_000)), "", INQUIRY),
        ("long-header", "Inquiry", "X-Long: " + "a" * (1 << 20) + "\r\n", INQUIRY),
        ("nul-bytes", "Inquiry", "", INQUIRY.replace("valves", "val\x00ves")),
        ("junk-charset", "=?x-unknown-junk?Q?Anfrage_Kugelh=E4hne?=", "", INQUIRY),
        ("bad-date", "Inquiry", "", INQUIRY),
        ("forged-marker", "Inquiry", "X-Mailrouter: forwarded\r\nAuto-Submitted: no\r\n", INQUIRY),
    ]
    out = []
    for n, (case, subject, extra, body) in enumerate(cases):
        sender = f'{_ew("Weber" + chr(13) + chr(10) + "X-Injected: name")} <buyer{n}@weber-armaturen.de>' \
            if case == "name-crlf" else None
        raw = _plain(n, case, body, subject=subject, sender=sender, extra=extra)
        if case == "bad-date":
            raw = raw.replace(b"Date: Mon, 30 Nov 2026", b"Date: Fri, 31 Feb 99999")
        out.append((case, raw))
    invalid = bytes(rng.randrange(128, 256) for _ in range(2000))
    out.append(("invalid-utf8", _headers(20, "invalid-utf8", subject="Anfrage \xff\xfe").encode("latin-1")
                + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + invalid + INQUIRY.encode()))
    out.append(("zip-charset", _headers(21, "zip-charset").encode()
                + b"Content-Type: text/plain; charset=zip\r\n\r\n" + INQUIRY.encode()))
    out.append(("nested-400", (_headers(22, "nested-400") + _nested(400, INQUIRY)).encode()))
    html = "<div>" * 10_000 + INQUIRY + "</div>" * 10_000
    out.append(("deep-html", (_headers(23, "deep-html") + "Content-Type: text/html; charset=utf-8\r\n\r\n"
                              + html).encode()))
    out.append(("no-final-newline", _plain(24, "no-final-newline", INQUIRY.rstrip())))
    return out


def _big_attachment(n: int, case: str, part_headers: str, boundary: bytes, param: bytes | None = None) -> bytes:
    data = base64.encodebytes(random.Random(n).randbytes(1_700_000))
    param = param or b'boundary="' + boundary + b'"'
    head = _headers(n, case).encode() + b"Content-Type: multipart/mixed; " + param + b"\r\n\r\n"
    return (head + b"--" + boundary + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + INQUIRY.encode()
            + b"\r\n--" + boundary + b"\r\n" + part_headers.encode() + b"Content-Transfer-Encoding: base64\r\n\r\n"
            + data.replace(b"\n", b"\r\n") + b"\r\n--" + boundary + b"--\r\n")


def poison_set() -> list[tuple[str, bytes]]:
    return [
        ("spool-zip-filename", _big_attachment(
            30, "spool-zip-filename",
            'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="=?zip?B?ZHJhd2luZy5wZGY=?="\r\n',
            b"POISON-1")),
        ("spool-8bit-boundary", _big_attachment(
            31, "spool-8bit-boundary", "Content-Type: application/pdf\r\n", "GRENZE-Ä".encode("latin-1"))),
        ("spool-2231-boundary", _big_attachment(
            32, "spool-2231-boundary", "Content-Type: application/pdf\r\n", "B-ä-2231".encode(),
            param=b"boundary*=utf-8''B-%C3%A4-2231")),
    ]


def slow_set() -> list[tuple[str, bytes]]:
    on_on = _plain(40, "on-on-on", "On " * 33_334 + "\r\n" + INQUIRY)
    lines = "".join("--x\r\n" for _ in range(420_000))
    nested = _headers(41, "nested-6000") + _nested(6_000, lines + INQUIRY)
    return [("on-on-on", on_on), ("nested-6000", nested.encode())]


def memory_set(count: int = 120, size: int = int(1.9 * 2**20)) -> list[tuple[str, bytes]]:
    out = []
    for n in range(count):
        head = _headers(100 + n, f"memory-{n}", subject=f"RFQ valves with drawings ({n})")
        filler = base64.encodebytes(random.Random(n).randbytes(int(size * 0.74))).replace(b"\n", b"\r\n")
        raw = (head.encode() + b'Content-Type: multipart/mixed; boundary="M"\r\n\r\n--M\r\n'
               b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + INQUIRY.encode()
               + b"\r\n--M\r\nContent-Type: application/pdf; name=drawing.pdf\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" + filler + b"\r\n--M--\r\n")
        out.append((f"memory-{n}", raw))
    return out


def memory_hungry(size: int = 16 * 2**20, sender: str | None = None, subject: str = "Inquiry",
                  text: str = INQUIRY) -> bytes:
    """An ordinary plain-text inquiry padded with short lines to `size` octets: harmless to read,
    costly to parse (measured: 16 MB parses under the default 512 MiB ceiling, not under 256; 12 MB
    under 256, not 200). Under `daemon.large_message_bytes` it is parsed whole, not from a spool
    file's reduced copy."""
    line = "Please quote your best price and lead time for each item of the list below.\r\n"
    head = _plain(90, "memory-hungry", text.replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n",
                  subject=subject, sender=sender)
    return head + (line * ((size - len(head)) // len(line) + 1)).encode()


SETS = {"main": main_set, "poison": poison_set, "slow": slow_set, "memory": memory_set}


def replay_order(name: str) -> list[Hostile]:
    """The set's messages, each hostile one followed by its sentinel (memory: no sentinels)."""
    out: list[Hostile] = []
    for i, (case, raw) in enumerate(SETS[name]()):
        out.append(Hostile(case, raw))
        if name != "memory":
            out.append(sentinel(1000 + len(out) + i))
    return out
