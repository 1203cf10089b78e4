"""Where a server login's secret comes from: a value, a command, or an OAuth2 token endpoint.

Gmail and Microsoft 365 accept only OAuth2 (SASL XOAUTH2) for IMAP and SMTP; other sites keep
passwords in a password manager and hand them over with a command, as mbsync's PassCmd does.
Every source has `get() -> str` and a `kind` telling the adapters whether the string is a
password (LOGIN / AUTH PLAIN) or an access token (XOAUTH2). Each value a source produces is
registered with logsetup, so it can never appear in a log line, and no error raised here
contains a secret or a command's output: only the config key and what to do.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from mailrouter.runtime.logsetup import redact, register_secret

Kind = Literal["password", "xoauth2"]
COMMAND_TIMEOUT = 30.0  # seconds; a password manager waiting for a PIN would otherwise hang start-up
# A secret is one line; a command that prints more than this is broken (or `yes`), and reading
# all of it would fill memory (the review measured 1.4 GB in 2 s), so it is stopped.
COMMAND_OUTPUT_LIMIT = 64 * 1024
EXPIRY_MARGIN = 60.0  # seconds; renew a token this long before it expires, so no login uses a stale one
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class CredentialError(Exception):
    """A secret could not be had; the message names the config key and never the secret."""


class CredentialSource(Protocol):
    kind: Kind

    def get(self) -> str: ...


@dataclass
class StaticSource:
    """A value read once at start (password_env, password_file): today's behaviour."""

    value: str = field(repr=False)
    kind: Kind = "password"

    def __post_init__(self) -> None:
        register_secret(self.value)

    def get(self) -> str:
        return self.value


@dataclass
class CommandSource:
    """Runs `command` on every get(): the first line of its standard output is the secret.

    A list runs without a shell; a string runs with /bin/sh, so pipes and ~ work as in mbsync.
    Its standard error is not captured: it goes to our stderr (the journal), where the
    sysadmin sees the password manager's own message next to ours.
    """

    key: str  # e.g. "mailbox[0].password_command", for the error messages
    command: str | Sequence[str]
    timeout: float = COMMAND_TIMEOUT
    kind: Kind = "password"

    def get(self) -> str:
        value = _first_line(self.key, self._run())
        register_secret(value)
        return value

    def _run(self) -> bytes:
        shell = isinstance(self.command, str)
        try:
            # A session of its own, so a timeout kills the whole pipeline, not just the shell.
            proc = subprocess.Popen(self.command, shell=shell, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise CredentialError(f"{self.key}: cannot run the command: {exc.strerror}") from None
        with proc:
            out = self._bounded_output(proc)
        if proc.returncode != 0:
            raise CredentialError(f"{self.key}: the command failed with exit status {proc.returncode}; "
                                  "its own message, if any, is in the log just before this one")
        return out

    def _bounded_output(self, proc: subprocess.Popen[bytes]) -> bytes:
        """At most COMMAND_OUTPUT_LIMIT bytes of standard output, within the timeout."""
        assert proc.stdout is not None
        stdout, chunks = proc.stdout, []

        def read() -> None:
            chunks.append(stdout.read(COMMAND_OUTPUT_LIMIT + 1))  # returns at the limit or at EOF

        reader = threading.Thread(target=read, name="credential-command", daemon=True)
        reader.start()
        reader.join(self.timeout)
        if reader.is_alive():
            os.killpg(proc.pid, signal.SIGKILL)
            reader.join()
            proc.wait()
            raise CredentialError(f"{self.key}: the command did not finish within "
                                  f"{self.timeout:g} s (does it wait for a PIN or a terminal?)")
        out = chunks[0] if chunks else b""
        if len(out) > COMMAND_OUTPUT_LIMIT:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise CredentialError(f"{self.key}: the command printed more than {COMMAND_OUTPUT_LIMIT // 1024} KiB; "
                                  "a secret is one line (stopped it)")
        try:
            proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise CredentialError(f"{self.key}: the command closed its output but did not exit within "
                                  f"{self.timeout:g} s") from None
        return out


def _first_line(key: str, out: bytes) -> str:
    lines = out.decode("utf-8", errors="replace").splitlines()
    value = lines[0].strip() if lines else ""
    if not value:
        raise CredentialError(f"{key}: the command printed nothing on its first line")
    return value


Clock = Callable[[], float]


@dataclass
class RefreshTokenSource:
    """OAuth2 refresh-token grant (RFC 6749 §6): trades the long-lived refresh token for an
    access token, cached until EXPIRY_MARGIN before it expires. Thread-safe: the mailbox
    workers and the outbox share one source per account."""

    key: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    scope: str = ""
    ca_file: str | None = None
    timeout: float = 30.0
    clock: Clock = time.monotonic
    kind: Kind = "xoauth2"
    _token: str = field(default="", repr=False)
    _expires: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        check_token_url(self.key, self.token_url)
        register_secret(self.client_secret)
        register_secret(self.refresh_token)

    def get(self) -> str:
        with self._lock:
            if not self._token or self.clock() >= self._expires:
                self._refresh()
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the server refused it: revoked before its expiry)."""
        with self._lock:
            self._token, self._expires = "", 0.0

    def _refresh(self) -> None:
        started = self.clock()
        answer = self._post()
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise CredentialError(f"{self.key}: the token endpoint's answer has no access_token")
        register_secret(token)
        if isinstance(answer.get("refresh_token"), str):  # rotated (Microsoft): use the new one
            self.refresh_token = answer["refresh_token"]
            register_secret(self.refresh_token)
        lifetime = float(answer.get("expires_in") or 3600)
        self._token, self._expires = token, started + lifetime - EXPIRY_MARGIN

    def _post(self) -> dict[str, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": self.refresh_token,
                "client_id": self.client_id}
        if self.client_secret:
            form["client_secret"] = self.client_secret
        if self.scope:
            form["scope"] = self.scope
        request = urllib.request.Request(self.token_url, data=urllib.parse.urlencode(form).encode(),
                                         headers={"Accept": "application/json"}, method="POST")
        context = ssl.create_default_context(cafile=self.ca_file)  # verifies chain and host name
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as response:
                return _json_object(self.key, response.read())
        except urllib.error.HTTPError as exc:
            raise CredentialError(f"{self.key}: token endpoint {self.token_url} answered "
                                  f"{exc.code}: {_oauth_error(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CredentialError(f"{self.key}: cannot reach token endpoint {self.token_url}: {reason}") from None


def _json_object(key: str, body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CredentialError(f"{key}: the token endpoint did not answer with a JSON object")
    return answer


def _oauth_error(exc: urllib.error.HTTPError) -> str:
    """RFC 6749 §5.2 error and description, e.g. "invalid_grant (Token has been revoked)"."""
    try:
        answer = json.loads(exc.read())
    except (ValueError, OSError):
        return exc.reason or "no details"
    if not isinstance(answer, dict):
        return "no details"
    text = str(answer.get("error", "error"))
    if answer.get("error_description"):
        text += f" ({answer['error_description']})"
    hint = " — get a new refresh token" if answer.get("error") == "invalid_grant" else ""
    return redact(text[:300]) + hint


def check_token_url(key: str, url: str) -> None:
    """https only, except on loopback (a local token helper): a refresh token is a password."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        return
    raise CredentialError(f"{key}: token_url must be an https:// URL (http:// only for loopback), not {url!r}")


# -- SASL XOAUTH2

def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response before base64 (Google's and Microsoft's format).
    imapclient's oauth2_login and aiosmtplib's auth_xoauth2 build and encode it themselves;
    this is for other clients and for tests."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def xoauth2_base64(user: str, token: str) -> str:
    return base64.b64encode(xoauth2_string(user, token).encode()).decode("ascii")


def async_token_generator(source: CredentialSource) -> Callable[[], Awaitable[str]]:
    """For aiosmtplib.SMTP(oauth_token_generator=...): get() may block on HTTP, so it runs in
    a thread instead of stalling the outbox's event loop."""
    import asyncio

    async def token() -> str:
        return await asyncio.to_thread(source.get)

    return token


# -- reading a server table (the keys config.py validates)

CREDENTIAL_KEYS = frozenset({
    "auth", "password_env", "password_file", "password_command", "command_timeout",
    "oauth2_token_command", "oauth2_token_url", "oauth2_client_id", "oauth2_client_secret_env",
    "oauth2_client_secret_file", "oauth2_refresh_token_env", "oauth2_refresh_token_file",
    "oauth2_scope",
})


@dataclass
class SourceResult:
    source: CredentialSource | None
    problems: list[tuple[str, str]]  # (key, message), for config.Problem


def read_source(d: Mapping[str, Any], prefix: str, environ: Mapping[str, str], base: Path) -> SourceResult:
    """The credential source a [[mailbox]] or [smtp] table asks for; every problem, not the first.

    Nothing is run or fetched here: commands and token endpoints are tried by `check` and at
    start-up, when a failure can name what to fix.
    """
    problems: list[tuple[str, str]] = []
    auth = d.get("auth", "password")
    if auth not in ("password", "xoauth2"):
        problems.append((prefix + "auth", f'must be "password" or "xoauth2", not {auth!r}'))
        return SourceResult(None, problems)
    given = [k for k in (("password_env", "password_file", "password_command") if auth == "password"
                         else ("oauth2_token_command", "oauth2_token_url")) if k in d]
    if len(given) > 1:
        problems.append((prefix + given[1], f"give only one of {', '.join(given)}"))
        return SourceResult(None, problems)
    timeout = d.get("command_timeout", COMMAND_TIMEOUT)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        problems.append((prefix + "command_timeout", f"must be a positive number of seconds, not {timeout!r}"))
        timeout = COMMAND_TIMEOUT
    if auth == "password":
        source = _password_source(d, prefix, environ, base, float(timeout), problems)
    else:
        source = _oauth2_source(d, prefix, environ, base, float(timeout), problems)
    return SourceResult(None if problems else source, problems)


def _password_source(d: Mapping[str, Any], prefix: str, environ: Mapping[str, str], base: Path,
                     timeout: float, problems: list[tuple[str, str]]) -> CredentialSource | None:
    if "password_command" in d:
        command = _command(d, prefix + "password_command", problems)
        return CommandSource(prefix + "password_command", command, timeout) if command else None
    if "password_env" in d or "password_file" in d:
        value = _secret_value(d, prefix, "password", environ, base, problems)
        return StaticSource(value) if value is not None else None
    return StaticSource("")  # no login (a loopback SMTP relay)


def _oauth2_source(d: Mapping[str, Any], prefix: str, environ: Mapping[str, str], base: Path,
                   timeout: float, problems: list[tuple[str, str]]) -> CredentialSource | None:
    if "oauth2_token_command" in d:
        command = _command(d, prefix + "oauth2_token_command", problems)
        return CommandSource(prefix + "oauth2_token_command", command, timeout, "xoauth2") if command else None
    if "oauth2_token_url" not in d:
        problems.append((prefix + "auth", "xoauth2 needs oauth2_token_command, or oauth2_token_url "
                         "with oauth2_client_id and a refresh token"))
        return None
    url, client_id = d.get("oauth2_token_url"), d.get("oauth2_client_id")
    if not isinstance(client_id, str) or not client_id:
        problems.append((prefix + "oauth2_client_id", "is required with oauth2_token_url"))
    secret = _secret_value(d, prefix, "oauth2_client_secret", environ, base, problems, optional=True)
    refresh = _secret_value(d, prefix, "oauth2_refresh_token", environ, base, problems)
    if problems or not isinstance(url, str) or refresh is None:
        if not isinstance(url, str):
            problems.append((prefix + "oauth2_token_url", "must be a string"))
        return None
    try:
        return RefreshTokenSource(prefix + "oauth2_token_url", url, str(client_id), secret or "",
                                  refresh, scope=str(d.get("oauth2_scope", "")), timeout=timeout)
    except CredentialError as exc:
        problems.append((prefix + "oauth2_token_url", str(exc).split(": ", 1)[1]))
        return None


def _command(d: Mapping[str, Any], key: str, problems: list[tuple[str, str]]) -> str | list[str] | None:
    value = d[key.rpartition(".")[2]]
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    problems.append((key, 'must be a command line ("pass show mail/sales") or a list of arguments'))
    return None


def _secret_value(d: Mapping[str, Any], prefix: str, name: str, environ: Mapping[str, str], base: Path,
                  problems: list[tuple[str, str]], optional: bool = False) -> str | None:
    """`<name>_env` or `<name>_file` (a path may use $CREDENTIALS_DIRECTORY from LoadCredential=)."""
    env_key, file_key = f"{name}_env", f"{name}_file"
    if env_key in d:
        if d[env_key] not in environ:
            problems.append((prefix + env_key, f"environment variable {d[env_key]} is not set"))
            return None
        return environ[d[env_key]]
    if file_key in d:
        path = credential_path(str(d[file_key]), environ, base)
        if path is None:
            problems.append((prefix + file_key, "uses $CREDENTIALS_DIRECTORY, which is set only when "
                             "systemd starts the service with LoadCredential=; from a shell the same "
                             f"files are read from {base / SHELL_CREDENTIALS}/, which does not exist"))
            return None
        try:
            if loose := _loose_mode(path):
                problems.append((prefix + file_key, f"{path} is readable by {loose} (mode "
                                 f"{path.stat().st_mode & 0o777:04o}); a password file must be readable by "
                                 f"its owner only: chmod 600 {path}"))
                return None
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append((prefix + file_key, f"cannot read {path}: {exc.strerror}"))
            return None
    if not optional:
        problems.append((prefix + env_key, f"give {env_key} or {file_key}"))
        return None
    return ""


def _loose_mode(path: Path) -> str:
    """Who besides the owner may read a secret file: "", "its group", "everyone"."""
    mode = path.stat().st_mode
    return "everyone" if mode & 0o004 else "its group" if mode & 0o040 else ""


# Beside config.toml: the folder `mailrouter unit` makes LoadCredential= read from, so `check`
# and the admin commands in a root shell read the very files the service will get.
SHELL_CREDENTIALS = "credentials"


def credential_path(value: str, environ: Mapping[str, str], base: Path) -> Path | None:
    """Expand $CREDENTIALS_DIRECTORY / ${CREDENTIALS_DIRECTORY} (outside systemd: credentials/
    beside the config, if it exists); relative paths are relative to the config file. None when
    the variable is used but there is no such folder."""
    directory = environ.get("CREDENTIALS_DIRECTORY") or (
        str(base / SHELL_CREDENTIALS) if (base / SHELL_CREDENTIALS).is_dir() else "")
    for spelling in ("${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"):
        if spelling in value:
            if not directory:
                return None
            value = value.replace(spelling, directory)
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path
