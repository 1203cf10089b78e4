"""Posting notices to chat webhooks without ever holding up routing.

`send` only queues; one background thread posts, retries temporary failures with exponential
backoff and drops permanent ones, logging each outcome. `notify` gathers a target's
notices for its batch window (a minute by default) into one post: a day of notices was once
51 posts. A notice may name the database row that keeps it (sla/chat.py): `on_posted` gets
the rows of every post that is done, delivered or given up, so a crash inside the window
loses nothing. Webhook URLs carry their secret in the
query (WeCom key=, DingTalk access_token=) or the path (Slack, Feishu), so logs name the
target and its host only.
"""
from __future__ import annotations

import heapq
import itertools
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailrouter.config.credentials import credential_path

from mailrouter.sla.notify import FORMATS, Mentioned, Notice, batch_payload
from mailrouter.config.reader import Problem, Reader

log = logging.getLogger("mailrouter.webhook")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class WebhookTarget:
    name: str
    url: str = field(repr=False)  # a secret: never in a repr, a traceback or a log line
    format: str = "json"
    language: str | None = None  # the channel's (team's) language; None: each notice's recipient's
    batch: float = 0.0  # seconds notices wait to share one post (config default: 60); 0: at once

    @property
    def platform(self) -> str:
        """Key of reps' chat_ids for this format (feishu_text is Feishu)."""
        return self.format.partition("_")[0]

    @property
    def where(self) -> str:
        """What logs may say about the destination."""
        return f"{self.name} ({urlsplit(self.url).hostname or '?'})"


def redact_url(url: str) -> str:
    """scheme://host/… : enough to tell endpoints apart, no token from the path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…"


@dataclass
class _Job:
    target: WebhookTarget
    body: bytes | None  # None: the target's batch, rendered when its window closes
    attempt: int = 0
    ids: list[int] = field(default_factory=list)  # chat_posts rows this post carries


class WebhookSender:
    """Background poster. Thread-safe; `close()` (or `flush()`) before the process exits."""

    def __init__(self, *, timeout: float = 10.0, attempts: int = 5, backoff_initial: float = 2.0,
                 backoff_max: float = 300.0, max_queue: int = 1000, ca_file: str | None = None,
                 on_posted: Callable[[list[int]], None] | None = None):
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_queue = max_queue
        # Certificates and host names are always verified; ca_file only adds a company CA.
        self._tls = ssl.create_default_context(cafile=ca_file)
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._busy = 0
        self._batches: dict[str, list[tuple[Mentioned, int | None]]] = {}  # target -> notices and their rows
        self.on_posted = on_posted  # called from the sender thread with the rows of a finished post
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
        self._thread.start()

    def notify(self, target: WebhookTarget, notice: Notice, mention: str | None = None,
               row: int | None = None, window: float | None = None) -> bool:
        """Queue a notice for the target's next batch post (at once when its window is 0).
        `row`: the chat_posts row keeping it; `window`: seconds instead of the target's (0 for
        notices that waited before a restart)."""
        window = target.batch if window is None else window
        if target.batch <= 0:
            return self.send(target, batch_payload(target.format, [(notice, mention)]), [row] if row is not None else [])
        with self._cond:
            if self._closed:
                log.error("webhook %s: not queued (sender closed)", target.where)
                return False
            waiting = self._batches.setdefault(target.name, [])
            if not waiting:  # the first of a window: its post goes when the window closes
                self._push(time.monotonic() + window, _Job(target, None))
            waiting.append(((notice, mention), row))
        return True

    def send(self, target: WebhookTarget, payload: dict[str, Any], rows: Sequence[int] = ()) -> bool:
        """Queue one POST; False (logged) when closed or the queue is full, never blocks."""
        body = _encode(payload)
        with self._cond:
            if self._closed or len(self._heap) + self._busy >= self.max_queue:
                log.error("webhook %s: not queued (%s)", target.where,
                          "sender closed" if self._closed else "queue full")
                return False
            self._push(time.monotonic(), _Job(target, body, ids=list(rows)))
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until every queued POST has succeeded or been given up; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._heap and not self._busy, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Give queued POSTs up to `timeout`, then stop; returns whether everything went out."""
        with self._cond:  # batches waiting for their window go now rather than be dropped
            self._heap = [(0.0 if job.body is None else due, seq, job) for due, seq, job in self._heap]
            heapq.heapify(self._heap)
            self._cond.notify_all()
        flushed = self.flush(timeout)
        with self._cond:
            self._closed = True
            dropped = len(self._heap)
            self._heap.clear()
            self._cond.notify_all()
        if dropped:
            log.error("webhook sender stopped with %d POST(s) unsent", dropped)
        self._thread.join(timeout=max(self.timeout, 1.0))
        return flushed

    def _push(self, due: float, job: _Job) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), job))
        self._cond.notify_all()

    def _next_job(self) -> _Job | None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    self._busy += 1
                    job = heapq.heappop(self._heap)[2]
                    if job.body is None:
                        items = self._batches.pop(job.target.name, [])
                        job.body = _encode(batch_payload(job.target.format, [item for item, _ in items]))
                        job.ids = [row for _, row in items if row is not None]
                    return job
                self._cond.wait(self._heap[0][0] - now if self._heap else None)
            return None

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            retry_in: float | None = None
            try:
                retry_in = self._attempt(job)
                if retry_in is None and job.ids and self.on_posted:
                    self.on_posted(job.ids)  # before flush() returns: a clean stop leaves no row
            except Exception:  # a bug here must not kill the thread and silence every alert
                log.exception("webhook %s: unexpected error, POST dropped", job.target.where)
            finally:
                with self._cond:
                    if retry_in is not None and not self._closed:
                        self._push(time.monotonic() + retry_in, job)
                    self._busy -= 1
                    self._cond.notify_all()

    def _attempt(self, job: _Job) -> float | None:
        """POST once; the delay before a retry, or None when done (delivered or given up)."""
        job.attempt += 1
        error, retryable, hint = self._post(job)
        if error is None:
            log.info("webhook %s: delivered (attempt %d)", job.target.where, job.attempt)
            return None
        if not retryable or job.attempt >= self.attempts:
            log.error("webhook %s: %s; giving up after %d attempt(s)", job.target.where, error, job.attempt)
            return None
        delay = min(self.backoff_max, max(hint or 0.0, self.backoff_initial * 2.0 ** (job.attempt - 1)))
        log.warning("webhook %s: %s; retry %d/%d in %.1fs", job.target.where, error,
                    job.attempt + 1, self.attempts, delay)
        return delay

    def _post(self, job: _Job) -> tuple[str | None, bool, float | None]:
        """(error or None, retryable, Retry-After seconds); messages never contain the URL."""
        request = urllib.request.Request(job.target.url, data=job.body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": "mailrouter"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._tls) as resp:
                reply = resp.read(65536)
        except urllib.error.HTTPError as exc:
            with exc:  # it holds the socket; an unclosed one warns (an error under pytest)
                retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
                hint = float(retry_after) if retry_after.isdigit() else None
                return f"HTTP {exc.code}", exc.code in RETRY_STATUSES, hint
        except urllib.error.URLError as exc:
            return f"cannot connect: {exc.reason}", True, None
        except (TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}", True, None
        return _platform_error(reply), True, None


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _platform_error(reply: bytes) -> str | None:
    """WeCom, DingTalk and Feishu answer 200 with an error code in the body; 0 means sent."""
    try:
        data = json.loads(reply or b"{}")
    except ValueError:
        return None  # a receiver that answers 2xx with non-JSON accepted it
    if not isinstance(data, dict):
        return None
    code = data.get("errcode", data.get("code", 0))
    if code in (0, None, "0"):
        return None
    message = str(data.get("errmsg", data.get("msg", "")))[:200]
    return f"platform error {code}: {message}"


WEBHOOK_KEYS = {"name", "format", "url_env", "url_file", "language", "batch"}


def webhook_from_config(raw: dict[str, Any], file: str, key_prefix: str,
                        environ: dict[str, str]) -> tuple[WebhookTarget | None, list[Problem]]:
    """One `[[sla.webhook]]` table. The URL is a secret, so like passwords it comes from an
    environment variable or a file, never from config.toml itself."""
    c = Reader(file, prefix=key_prefix)
    c.unknown_keys(raw, WEBHOOK_KEYS | {"url"})
    if "url" in raw:
        c.add("url", "webhook URLs contain their token; use url_env or url_file")
    name = c.typed(raw, "name", str, "")
    if not name:
        c.add("name", "is required")
    fmt = c.typed(raw, "format", str, "json")
    if fmt not in FORMATS:
        c.add("format", f"must be one of {', '.join(FORMATS)}, not {fmt!r}")
    language = c.typed(raw, "language", str, "") or None
    if language not in (None, "en", "zh"):
        c.add("language", f"chat posts are written in en or zh, not {language!r}")
    batch = c.duration(raw, "batch", timedelta(minutes=1))
    if batch > timedelta(minutes=10):
        c.add("batch", "at most 10m: a notice held longer is late")
    url = _url(c, raw, environ)
    if c.problems or not url:
        return None, c.problems
    return WebhookTarget(name, url, fmt, language, batch.total_seconds()), []


def _url(c: Reader, raw: dict[str, Any], environ: dict[str, str]) -> str:
    env_name, file_name = raw.get("url_env"), raw.get("url_file")
    if bool(env_name) == bool(file_name):
        c.add("url_env", "give exactly one of url_env or url_file")
        return ""
    if env_name:
        url = environ.get(str(env_name), "")
        if not url:
            c.add("url_env", f"environment variable {env_name} is not set")
    else:
        # like password_file: $CREDENTIALS_DIRECTORY (what `mailrouter unit` suggests), and
        # relative to config.toml
        path = credential_path(str(file_name), environ, Path(c.file).parent)
        if path is None:
            c.add("url_file", "uses $CREDENTIALS_DIRECTORY, which is set only when systemd starts "
                  "the service with LoadCredential= (from a shell: credentials/ beside the config)")
            return ""
        try:
            url = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            c.add("url_file", f"cannot read {path}: {exc.strerror}")
            return ""
    parts = urlsplit(url)
    if url and not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)):
        c.add("url_env" if env_name else "url_file",
              f"{redact_url(url)}: must be https (plain http only to loopback)")
    elif url and not parts.hostname:  # "https:///x" parses, and every post would fail
        c.add("url_env" if env_name else "url_file", f"{redact_url(url)}: has no host name")
    return url
