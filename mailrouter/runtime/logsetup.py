"""Logging for a service: text for journald, JSON for log shippers, secrets redacted.

What is logged about a message is its envelope — Message-ID, sender, rule, rep, folder,
latency — never its body or attachments: the log goes to journald and log shippers that more
people can read than the shared mailbox. Code that logs a message passes those fields via
`extra=` so the JSON format carries them as fields, not only inside the text.

Secrets are removed twice over: every value given to `register_secret` (passwords and tokens
as they are loaded), and anything that looks like `password=…`, `token=…`, `Authorization: …`
or `Bearer …`, in case a library prints one we never saw.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from datetime import datetime, timezone
from typing import IO, Any, Literal

Format = Literal["text", "json"]
REDACTED = "***"
MIN_SECRET_LENGTH = 4  # shorter "secrets" would blank out ordinary words in every line

# Field names code passes via extra=; they become JSON fields (and show in text as is).
EXTRA_FIELDS = ("message_id", "sender", "rule", "rep", "team", "folder", "latency", "outcome",
                "mailbox", "uid", "reason", "attempt", "error")
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}

_KEY_VALUE = re.compile(
    r"""(?ix)
    (["']?\b(?:password|passwd|pass|token|access_token|refresh_token|client_secret|api_key|secret)
     ["']?\s*[=:]\s*["']?)        # the key, its = or :, an opening quote
    [^\s"'&,;]+                   # the value, up to a delimiter
    """)
_AUTHORIZATION = re.compile(r"(?i)(\bauthorization:\s*)[^\r\n]+")
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_installed: list[logging.Handler] = []  # what setup_logging added, so a second call replaces it


def register_secret(value: str) -> None:
    """Never show `value` in a log line again (call it when a password or token is loaded)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def forget_secrets() -> None:
    """Drop all registered values (tests; a reload registers the new ones)."""
    with _secrets_lock:
        _secrets.clear()


def redact(text: str) -> str:
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)  # longest first: one may contain another
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _AUTHORIZATION.sub(r"\1" + REDACTED, text)
    text = _BEARER.sub(r"\1" + REDACTED, text)
    return _KEY_VALUE.sub(r"\1" + REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record before any formatter sees it: message, traceback, string extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the handler report it, as logging does
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        for name in extra_names(record):
            value = getattr(record, name)
            if isinstance(value, str):
                setattr(record, name, redact(value))
        return True


def extra_names(record: logging.LogRecord) -> list[str]:
    return [name for name in vars(record) if name not in _STANDARD_ATTRS and not name.startswith("_")]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the extra= fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in extra_names(record):
            entry[name] = _jsonable(getattr(record, name))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


# journald reads "<N>" at the start of a line as the syslog priority (SyslogLevelPrefix=yes).
_SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
                    logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    """No timestamp (journald stamps every line itself); the priority prefix makes
    `journalctl -p warning` work."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def text_formatter() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                             datefmt="%Y-%m-%dT%H:%M:%S%z")


def journal_attached(stream: IO[str], environ: dict[str, str] | None = None) -> bool:
    """True when `stream` is the journal connection systemd gave us: $JOURNAL_STREAM names its
    device:inode (a child started from a shell inherits the variable but not the stream)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # StringIO and friends have no descriptor
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


# Libraries whose DEBUG output carries the mail itself (imapclient logs every FETCH response,
# aiosmtplib the DATA it sends, the parsers what they read): held at INFO whatever our level,
# so that DEBUG never logs a customer's message (README: bodies are never logged).
MAIL_ECHOING_LOGGERS = ("imapclient", "aiosmtplib", "mailparser", "mailparser_reply", "mail_parser_reply")


def setup_logging(level: str | int = "INFO", fmt: Format = "text", stream: IO[str] | None = None,
                  environ: dict[str, str] | None = None) -> logging.Handler:
    """Send every logger's records to `stream` (stderr) in `fmt`; calling again replaces the
    handler this module installed, so a reload or a test can switch formats."""
    stream = sys.stderr if stream is None else stream
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
    elif fmt == "text":
        formatter = JournalFormatter() if journal_attached(stream, environ) else text_formatter()
    else:
        raise ValueError(f'log format must be "text" or "json", not {fmt!r}')
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
    _installed[:] = [handler]
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else getattr(logging, level.upper()))
    for name in MAIL_ECHOING_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    # Alembic narrates its plugin set-up at INFO on every start; the upgrade itself is logged
    # by mailrouter.store in one line.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler
