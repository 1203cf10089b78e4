"""Load and validate config.toml and the rule files, reporting every mistake at once.

Each problem names the file, the key and what is wrong, so a sysadmin can fix them all in one
pass instead of discovering them one restart (or one night) at a time.
"""
from __future__ import annotations

import os
import re
from datetime import date, time
from pathlib import Path
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailrouter.config import paths
from mailrouter.intake.firststart import DEFAULT_BACKFILL, Backfill, parse_backfill
from mailrouter.config.credentials import CREDENTIAL_KEYS, CredentialSource, Kind, StaticSource, read_source
from mailrouter.config.deferred import DeferredSource
from mailrouter.config.reader import ConfigError, Problem, Reader, read_toml
from mailrouter.config.schema import (DEFAULT_LARGE_MESSAGE_BYTES, MARKER_KEY_FILE, TLS_MODES, Config, DigestConfig, FoldersConfig,
                                      MailboxConfig, MetricsConfig, RepConfig, Schedule, ServerConfig,
                                      SmtpConfig, TeamConfig)
from mailrouter.config.subject import (DEFAULT_LABELS, TAG_PLACEMENTS, SubjectFormat, customer_subject,
                                       labels_of_legacy, tag_problem)
from mailrouter.decide.rules import load_rules
from mailrouter.model import FormSender, ParseSettings
from mailrouter.parse.domain import registered_domain
from mailrouter.parse.freemail import DEFAULT_FREE_MAIL_DOMAINS
from mailrouter.parse.language import DEFAULT_MIN_CHARS
from mailrouter.registry.settings import read_registry_section
from mailrouter.sla.config import read_sla

# The dataclasses live in config/schema.py and the reader in config/reader.py; these names stay
# importable from here for the callers that only need load_config and what it returns.
__all__ = ["Config", "ConfigError", "DigestConfig", "FoldersConfig", "MailboxConfig", "MetricsConfig",
           "Problem", "RepConfig", "ServerConfig", "SmtpConfig", "TeamConfig", "load_config", "read_toml"]

STRATEGIES = ("round_robin", "least_loaded")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
TOP_KEYS = {"daemon", "mailbox", "smtp", "reps", "teams", "folders", "forward", "classify",
            "form_sender", "registry", "sla", "reply_source", "metrics", "digest"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def load_config(path: str | Path, environ: dict[str, str] | None = None,
                resolve_secrets: bool = True) -> Config:
    """Read config.toml and the rule files it names; raise ConfigError listing every problem.

    resolve_secrets=False is for commands that log in nowhere: passwords, tokens and webhook
    URLs are not read (each server gets a DeferredSource that reads its secret on first use).
    Nothing in a config file, however malformed, raises anything but ConfigError.
    """
    path = Path(path)
    try:
        return _load(path, environ, resolve_secrets)
    except ConfigError:
        raise
    except Exception as exc:  # a reader missed a shape: still no traceback, still file and reason
        raise ConfigError([Problem(str(path), "-", f"cannot be read ({type(exc).__name__}: {exc}); "
                                   "please report this, with the key you changed last")]) from exc


def _load(path: Path, given_environ: dict[str, str] | None, resolve_secrets: bool) -> Config:
    environ = dict(os.environ) if given_environ is None else given_environ
    problems: list[Problem] = []
    data = read_toml(path, problems)
    if problems:
        raise ConfigError(problems)
    r = Reader(str(path), problems)
    r.unknown_keys(data, TOP_KEYS)
    base = path.parent
    # a deferred secret reads the process environment when it is used, not as it was at load
    servers = _Servers(r, environ if given_environ is not None or resolve_secrets else os.environ,
                       base, resolve_secrets)
    daemon = _daemon_section(r, r.table(data, "daemon"), base, paths.state_dir(base, environ))
    mailboxes = _mailboxes(r, data, servers)
    smtp = _smtp_section(r, r.table(data, "smtp"), servers)
    reps = _reps(r, r.table(data, "reps"), mailboxes)
    teams, team_hours = _teams(r, r.table(data, "teams"), reps)
    folders = _folders(r, r.table(data, "folders"))
    forward = _forward_section(r, r.table(data, "forward"), base)
    free_mail, threshold, own_extra = _classify_section(r, r.table(data, "classify"))
    authserv_ids = _authserv_ids(r, r.table(data, "classify"))
    form_senders = _form_senders(r, data)
    registry = read_registry_section(r, r.table(data, "registry"))

    def reply_server(d: dict[str, Any], p: str, own: set[str]) -> ServerConfig:
        r.unknown_keys(d, SERVER_KEYS | own, p)
        return servers.read(d, p, {"implicit": 993, "starttls": 143, "none": 143})

    sla = read_sla(r, data, team_hours, daemon["timezone"].key, environ, reply_server,
                   set(reps), {m.name for m in mailboxes}, resolve_secrets)
    ruleset = load_rules(daemon["rules_dir"], set(reps), set(teams), problems)
    for rule in ruleset.rules:
        if rule.ladder and rule.ladder not in sla.ladders:
            problems.append(Problem(rule.file, f"rule {rule.name!r}: ladder",
                                    f"unknown ladder {rule.ladder!r} (known: {', '.join(sorted(sla.ladders))})"))
    metrics = _metrics_section(r, r.table(data, "metrics"))
    digest = _digest_section(r, r.table(data, "digest"))
    if problems:
        raise ConfigError(problems)
    own = frozenset({rep.email.lower() for rep in reps.values()}
                    | {mb.address.lower() for mb in mailboxes} | own_extra)
    return Config(
        path=path, database=daemon["database"], timezone=daemon["timezone"],
        mailboxes=mailboxes, smtp=smtp, reps=reps, teams=teams, folders=folders,
        **forward, rules_dir=daemon["rules_dir"], connection_limit=daemon["connection_limit"],
        parse_workers=daemon["parse_workers"], parse_timeout=daemon["parse_timeout"],
        parse=ParseSettings(free_mail_domains=free_mail, form_senders=form_senders,
                            products=ruleset.products, language_threshold=threshold,
                            min_language_chars=_min_language_chars(r, r.table(data, "classify"))),
        rules=ruleset, own_addresses=own, registry=registry, sla=sla, metrics=metrics, digest=digest,
        large_message_bytes=daemon["large_message_bytes"], spool_dir=daemon["spool_dir"],
        secrets_resolved=resolve_secrets, language=daemon["language"], marker_key_file=daemon["marker_key_file"],
        own_domains=_own_domains(own, free_mail), authserv_ids=authserv_ids,
    )


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


COMMAND_LANGUAGES = ("en", "zh")  # what status, dry-run, report, overdue and suggest-rules print


def _daemon_section(r: Reader, d: dict[str, Any], base: Path, state_dir: Path) -> dict[str, Any]:
    p = "daemon."
    r.unknown_keys(d, {"database", "timezone", "rules_dir", "max_connections_per_server", "parse_workers",
                       "parse_timeout", "large_message_bytes", "spool_dir", "language"}, p)
    database = r.get(d, "database", str, f"sqlite:///{state_dir / 'mailrouter.db'}", p)
    if database.startswith("sqlite:///") and not database.startswith("sqlite:////"):
        # a relative SQLite path is relative to the config file, not to the current directory
        database = "sqlite:///" + str(_resolve(base, database[len("sqlite:///"):]))
    if database.startswith("sqlite:///"):
        folder = Path(database[len("sqlite:///"):]).parent
        if not folder.is_dir():
            r.problem(p + "database", f"folder {folder} does not exist (SQLite creates the file, not its folder)")
    tz_name = r.get(d, "timezone", str, "Asia/Shanghai", p)
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        r.problem(p + "timezone", f"unknown time zone {tz_name!r} (use an IANA name like Asia/Shanghai)")
        tz = ZoneInfo("UTC")
    rules_dir = _resolve(base, r.get(d, "rules_dir", str, "rules", p))
    if not rules_dir.is_dir():
        r.problem(p + "rules_dir", f"folder {rules_dir} does not exist")
    limit = r.number(d, "max_connections_per_server", int, 8, p, low=1, high=100)
    workers = r.number(d, "parse_workers", int, 1, p, low=0, high=8)
    # a second is far above an ordinary parse (milliseconds); an hour would let one message
    # hold a mailbox past any watchdog
    timeout = float(r.number(d, "parse_timeout", float, 30.0, p, low=1, high=3600))
    language = r.get(d, "language", str, "en", p)
    if language not in COMMAND_LANGUAGES:
        r.problem(p + "language", f"must be one of {', '.join(COMMAND_LANGUAGES)}, not {language!r}")
        language = "en"
    return {"database": database, "timezone": tz, "rules_dir": rules_dir, "connection_limit": limit,
            "parse_workers": workers, "parse_timeout": timeout, "language": language, **_spool_keys(r, d, base, database, state_dir)}


def _spool_keys(r: Reader, d: dict[str, Any], base: Path, database: str, state_dir: Path) -> dict[str, Any]:
    p = "daemon."
    threshold = r.number(d, "large_message_bytes", int, DEFAULT_LARGE_MESSAGE_BYTES, p, low=1)
    # next to the SQLite database; else in the state directory
    home = Path(database[len("sqlite:///"):]).parent if database.startswith("sqlite:///") else state_dir
    spool_dir = _resolve(base, r.get(d, "spool_dir", str, str(home / "spool"), p))
    if spool_dir.exists() and not spool_dir.is_dir():
        r.problem(p + "spool_dir", f"{spool_dir} exists and is not a folder")
    elif not spool_dir.exists() and not _nearest_existing(spool_dir).is_dir():
        r.problem(p + "spool_dir", f"{spool_dir} cannot be created: {_nearest_existing(spool_dir)} is not a folder")
    return {"large_message_bytes": threshold, "spool_dir": spool_dir, "marker_key_file": home / MARKER_KEY_FILE}


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


SERVER_KEYS = {"host", "port", "tls", "user", "ca_file", "timeout"} | CREDENTIAL_KEYS
IMAP_PORTS = {"implicit": 993, "starttls": 143, "none": 143}


class _Servers:
    """Reads the login part of [[mailbox]], [smtp] and [[reply_source]] the same way."""

    def __init__(self, r: Reader, environ: Mapping[str, str], base: Path, resolve_secrets: bool):
        self.r, self.environ, self.base, self.resolve_secrets = r, environ, base, resolve_secrets

    def read(self, d: dict[str, Any], prefix: str, default_ports: dict[str, int]) -> ServerConfig:
        r = self.r
        host = r.get(d, "host", str, "", prefix, required=True)
        text = r.get(d, "tls", str, "implicit", prefix)
        tls = next((mode for mode in TLS_MODES if mode == text), None)
        if tls is None:
            r.problem(prefix + "tls", f"must be one of {', '.join(TLS_MODES)}, not {text!r}")
            tls = "implicit"
        if tls == "none" and host and host not in LOOPBACK:
            r.problem(prefix + "tls", f"plaintext to {host} would send the password in clear; "
                      "use implicit or starttls (tls = \"none\" is for loopback only)")
        port = r.number(d, "port", int, default_ports[tls], prefix, low=1, high=65535)
        ca_file = r.get(d, "ca_file", str, "", prefix) or None
        if ca_file and not _resolve(self.base, ca_file).is_file():
            r.problem(prefix + "ca_file", f"file {ca_file} does not exist")
        return ServerConfig(
            host=host, port=port, tls=tls, user=r.get(d, "user", str, "", prefix),
            credentials=self._credentials(d, prefix),
            ca_file=str(_resolve(self.base, ca_file)) if ca_file else None,
            timeout=r.number(d, "timeout", float, 60.0, prefix, above=0, high=3600),
        )

    def _credentials(self, d: dict[str, Any], prefix: str) -> CredentialSource:
        if "command_timeout" in d:  # inf would let a hung password manager block start-up forever
            self.r.number(d, "command_timeout", float, 30.0, prefix, above=0, high=3600)
        if "password" in d:
            self.r.problem(prefix + "password", "passwords are never written in the config file; "
                           "use password_env, password_file or password_command")
        if not self.resolve_secrets:
            environ, base = self.environ, self.base
            kind: Kind = "xoauth2" if d.get("auth") == "xoauth2" else "password"
            return DeferredSource(prefix, lambda: read_source(d, prefix, environ, base), kind)
        result = read_source(d, prefix, self.environ, self.base)
        for key, message in result.problems:
            self.r.problem(key, message)
        return result.source or StaticSource("")


def _backfill(r: Reader, d: dict[str, Any], prefix: str) -> Backfill:
    raw = d.get("backfill", DEFAULT_BACKFILL)
    # TOML lets a sysadmin write `backfill = 0` or an unquoted `backfill = 2026-12-01`: both mean what they say.
    text = raw.isoformat() if isinstance(raw, date) else "0" if raw == 0 and not isinstance(raw, bool) else raw
    if not isinstance(text, str):
        r.problem(prefix + "backfill", f'must be "0", a duration like "24h" or "3d", or a date like "2026-12-01", not {raw!r}')
        return parse_backfill("0")
    try:
        return parse_backfill(text)
    except ValueError as e:
        r.problem(prefix + "backfill", f"{raw!r}: {e}")
        return parse_backfill("0")  # never route history on a config we could not read


def _mailboxes(r: Reader, data: dict[str, Any], servers: _Servers) -> tuple[MailboxConfig, ...]:
    if not data.get("mailbox"):
        r.problem("mailbox", "at least one [[mailbox]] is required")
    result: list[MailboxConfig] = []
    for i, d in r.tables(data, "mailbox", "[[mailbox]]"):
        p = f"mailbox[{i}]."
        r.unknown_keys(d, SERVER_KEYS | {"name", "address", "display_name", "inbox", "idle",
                                         "idle_renew", "poll_interval", "backfill"}, p)
        name = r.get(d, "name", str, f"mailbox{i}", p, required=True)
        if any(m.name == name for m in result):
            r.problem(p + "name", f"duplicate mailbox name {name!r}")
        address = r.get(d, "address", str, "", p, required=True).strip().lower()
        if address and "@" not in address:
            r.problem(p + "address", f"{address!r} is not an email address")
        for other in result:
            if address and other.address == address:
                r.problem(p + "address", f"{address} is already the address of mailbox {other.name!r}; "
                          "each shared mailbox has its own address")
        result.append(MailboxConfig(
            name=name, address=address,
            display_name=r.get(d, "display_name", str, name.capitalize(), p),
            server=servers.read(d, p, IMAP_PORTS),
            inbox=r.get(d, "inbox", str, "INBOX", p),
            idle=r.get(d, "idle", bool, True, p),
            # RFC 2177: renew IDLE before the server's 29-minute timeout
            idle_renew=r.number(d, "idle_renew", float, 540.0, p, low=10, high=1740),
            # 0 would issue IMAP commands as fast as the server answers
            poll_interval=r.number(d, "poll_interval", float, 30.0, p, above=0, high=86400),
            backfill=_backfill(r, d, p),
        ))
    return tuple(result)


def _smtp_section(r: Reader, d: dict[str, Any], servers: _Servers) -> SmtpConfig:
    p = "smtp."
    r.unknown_keys(d, SERVER_KEYS | {"retry_initial", "retry_max", "retry_deadline", "connections"}, p)
    if not d:
        r.problem("smtp", "an [smtp] section is required to send forwards")
    connections = r.number(d, "connections", int, 3, p, low=1, high=20)
    retry_initial = r.number(d, "retry_initial", float, 30.0, p, above=0)
    retry_max = r.number(d, "retry_max", float, 900.0, p, above=0)
    if retry_max < retry_initial:
        r.problem(p + "retry_max", f"must be at least retry_initial ({retry_initial:g})")
    return SmtpConfig(
        connections=connections,
        server=servers.read(d, p, {"implicit": 465, "starttls": 587, "none": 25}),
        retry_initial=retry_initial, retry_max=retry_max,
        retry_deadline=r.number(d, "retry_deadline", float, 86400.0, p, above=0),
    )


_FOLDER_BAD = re.compile(r"[*%\x00-\x1f\x7f]")


def _folder_problem(name: str) -> str | None:
    """Why `name` cannot be one segment of a folder path: it would escape, match or vanish."""
    if not name.strip():
        return "is empty"
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        return f"{name!r} must be one folder name: no /, \\ or leading . (it would leave the Routed folder)"
    if _FOLDER_BAD.search(name):
        return f"{name!r} contains * % or a control character (IMAP wildcards)"
    if name.upper() == "INBOX":
        return f"{name!r} is the inbox"
    return None


def _reps(r: Reader, d: dict[str, Any], mailboxes: tuple[MailboxConfig, ...]) -> dict[str, RepConfig]:
    reps: dict[str, RepConfig] = {}
    shared = {m.address: m.name for m in mailboxes}
    for rep_id, rd in d.items():
        p = f"reps.{rep_id}."
        if not isinstance(rd, dict):
            r.problem(p[:-1], f"must be a table ([reps.{rep_id}] with email = ...), not {rd!r}")
            continue
        if not ID_PATTERN.match(rep_id):
            r.problem(p[:-1], "rep ids are lower-case ASCII letters, digits, - and _ "
                      "(they become IMAP keywords); put the full name in name =")
        r.unknown_keys(rd, {"name", "email", "language", "folder", "active", "max_open", "chat_ids"}, p)
        email = r.get(rd, "email", str, "", p, required=True).strip().lower()
        if email and "@" not in email:
            r.problem(p + "email", f"{email!r} is not an email address")
        if email in shared:
            # the forward would land in the shared mailbox and be filed as our own mail
            r.problem(p + "email", f"{email} is the shared mailbox {shared[email]!r}; give the rep's own address")
        for other in reps.values():
            if email and other.email == email:
                r.problem(p + "email", f"{email} is already the address of rep {other.id!r}")
        language = r.get(rd, "language", str, "en", p)
        if language not in ("en", "zh"):
            r.problem(p + "language", f"templates exist for en and zh, not {language!r}")
        folder = r.get(rd, "folder", str, rep_id, p)
        if why := _folder_problem(folder):
            r.problem(p + "folder", why)
        for other in reps.values():
            if other.folder.casefold() == folder.casefold():
                r.problem(p + "folder", f"{folder!r} is already the folder of rep {other.id!r}")
        max_open = None
        if "max_open" in rd:
            max_open = r.number(rd, "max_open", int, None, p, low=1)
        reps[rep_id] = RepConfig(
            id=rep_id, name=r.get(rd, "name", str, rep_id, p), email=email, language=language,
            folder=folder, active=r.get(rd, "active", bool, True, p), max_open=max_open,
            chat_ids=_chat_ids(r, rd.get("chat_ids", {}), p + "chat_ids"))
    if not reps:
        r.problem("reps", "at least one rep is required")
    return reps


CHAT_PLATFORMS = ("wecom", "dingtalk", "feishu", "slack")  # where a post can @mention a rep
_CHAT_ID = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")


def _chat_ids(r: Reader, raw: Any, key: str) -> dict[str, str]:
    """`chat_ids = { wecom = "LiNa", feishu = "ou_..." }`: the rep's user id on each platform.
    Ids go into chat markup, so only plain id characters are accepted."""
    if not isinstance(raw, dict):
        r.problem(key, 'must be a table like { wecom = "LiNa", dingtalk = "manager4711" }')
        return {}
    ids = {}
    for platform, value in raw.items():
        if platform not in CHAT_PLATFORMS:
            r.problem(f"{key}.{platform}", f"unknown platform (known: {', '.join(CHAT_PLATFORMS)})")
        elif not isinstance(value, str) or not _CHAT_ID.match(value):
            r.problem(f"{key}.{platform}", f"must be the user id as the platform shows it "
                      f"(letters, digits, _ . @ + -), not {value!r}")
        else:
            ids[platform] = value
    return ids


def _teams(r: Reader, d: dict[str, Any], reps: dict[str, RepConfig]
           ) -> tuple[dict[str, TeamConfig], dict[str, dict[str, Any]]]:
    """The teams, and each team's [teams.X.hours] table for the SLA reader."""
    teams: dict[str, TeamConfig] = {}
    hours: dict[str, dict[str, Any]] = {}
    for team_id, td in d.items():
        p = f"teams.{team_id}."
        if not isinstance(td, dict):
            r.problem(p[:-1], f"must be a table ([teams.{team_id}] with members = [...]), not {td!r}")
            continue
        if team_id in reps:
            r.problem(p[:-1], "a team cannot have the same id as a rep")
        r.unknown_keys(td, {"members", "strategy", "supervisor", "hours"}, p)
        members = r.str_list(td, "members", p)
        for m in members:
            if m not in reps:
                r.problem(p + "members", f"unknown rep {m!r}")
        if not members:
            r.problem(p + "members", "a team needs at least one member")
        strategy = r.get(td, "strategy", str, "round_robin", p)
        if strategy not in STRATEGIES:
            r.problem(p + "strategy", f"must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        supervisor = r.get(td, "supervisor", str, "", p) or None
        if supervisor and supervisor not in reps:
            r.problem(p + "supervisor", f"unknown rep {supervisor!r}")
        teams[team_id] = TeamConfig(team_id, members, strategy, supervisor)
        if "hours" in td:
            if isinstance(td["hours"], dict):
                hours[team_id] = td["hours"]
            else:
                r.problem(p + "hours", "must be a table [teams.X.hours] with hours = [\"09:00-18:00\"], "
                          f"weekdays, timezone..., not {td['hours']!r}")
    return teams, hours


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_schedule(kind: str, text: str) -> Schedule:
    """"08:30" (daily) or "mon 08:30" (weekly); ValueError says what is wrong."""
    parts = text.split()
    weekday = None
    if kind == "weekly":
        if len(parts) != 2 or parts[0].lower()[:3] not in WEEKDAYS:
            raise ValueError(f'must be like "mon 08:30", not {text!r}')
        weekday = WEEKDAYS.index(parts[0].lower()[:3])
        parts = parts[1:]
    try:
        at = time.fromisoformat(parts[0])
    except (ValueError, IndexError):
        raise ValueError(f'must be a time like "08:30", not {text!r}') from None
    return Schedule(kind, at, weekday)


def _digest_section(r: Reader, d: dict[str, Any]) -> DigestConfig:
    p = "digest."
    r.unknown_keys(d, {"daily", "weekly"}, p)
    schedules = []
    for kind, default in (("daily", "08:30"), ("weekly", "mon 08:30")):
        text = r.get(d, kind, str, default, p)
        if text:
            try:
                schedules.append(parse_schedule(kind, text))
            except ValueError as exc:
                r.problem(p + kind, str(exc) + ' (or "" for none)')
    return DigestConfig(tuple(schedules))


def _metrics_section(r: Reader, d: dict[str, Any]) -> MetricsConfig:
    p = "metrics."
    r.unknown_keys(d, {"enabled", "host", "port"}, p)
    host = r.get(d, "host", str, "127.0.0.1", p)
    if not host.strip():
        r.problem(p + "host", "must be an address to listen on, like 127.0.0.1")
    return MetricsConfig(enabled=r.get(d, "enabled", bool, False, p), host=host,
                         port=r.number(d, "port", int, 9464, p, low=1, high=65535))


def _folders(r: Reader, d: dict[str, Any]) -> FoldersConfig:
    p = "folders."
    defaults = FoldersConfig()
    names = set(FoldersConfig.__dataclass_fields__)
    r.unknown_keys(d, names, p)
    values = {n: r.get(d, n, str, getattr(defaults, n), p) for n in names}
    if "/" in values["not_inquiry"]:
        r.problem(p + "not_inquiry", "is one folder name under the assign folder, without /")
    if "{rep}" not in values["routed"]:
        r.problem(p + "routed", "must contain {rep}, e.g. \"Routed/{rep}\"")
    for n, v in sorted(values.items()):
        if not v.strip() or v.upper() == "INBOX":
            r.problem(p + n, f"{v!r} cannot be used as a destination folder")
        elif _FOLDER_BAD.search(v) or ".." in v.split("/") or v.startswith("/"):
            r.problem(p + n, f"{v!r}: folder names cannot contain * % control characters, .. or a leading /")
    return FoldersConfig(**values)


def _forward_section(r: Reader, d: dict[str, Any], base: Path) -> dict[str, Any]:
    p = "forward."
    r.unknown_keys(d, {"subject_format", "labels", "customer_tag", "customer_tag_placement", "keyword_prefix",
                       "template_dir"}, p)
    tag = r.get(d, "customer_tag", str, "", p)
    if (why := tag_problem(tag)) is not None:
        r.problem(p + "customer_tag", why)
        tag = ""
    placement = r.get(d, "customer_tag_placement", str, "left", p)
    if placement not in TAG_PLACEMENTS:
        r.problem(p + "customer_tag_placement", f"{placement!r}: one of {', '.join(TAG_PLACEMENTS)}")
    legacy = d.get("subject_format") if isinstance(d.get("subject_format"), str) else None
    if legacy is not None and "labels" in d:
        r.problem(p + "subject_format", "replaced by forward.labels, which is set too: remove subject_format")
    labels = _labels(r, d, p, legacy)
    prefix = r.get(d, "keyword_prefix", str, "mr-", p)
    if not re.fullmatch(r"[A-Za-z0-9_-]*", prefix):
        r.problem(p + "keyword_prefix", "IMAP keywords allow only ASCII letters, digits, - and _")
    configured = r.get(d, "template_dir", str, "", p)
    template_dir = _resolve(base, configured) if configured else None
    if template_dir is not None and not template_dir.is_dir():
        r.problem(p + "template_dir", f"folder {template_dir} does not exist")
    return dict(subject_format=customer_subject(tag, placement), labels=labels, legacy_subject_format=legacy,
                keyword_prefix=prefix, template_dirs=paths.template_dirs(base, template_dir))


def _labels(r: Reader, d: dict[str, Any], p: str, legacy: str | None) -> SubjectFormat:
    """forward.labels, or an old forward.subject_format read as labels: its fields still show,
    to the rep only (the buyer's reply would carry them back; issue 15 item 1)."""
    key = "subject_format" if legacy is not None and "labels" not in d else "labels"
    text = (labels_of_legacy(legacy) if legacy is not None and key == "subject_format"
            else r.get(d, "labels", str, DEFAULT_LABELS.text, p))
    r.get(d, "subject_format", str, "", p)  # a wrong type is still a problem
    try:
        return SubjectFormat.compile(text)
    except ValueError as exc:
        r.problem(p + key, str(exc))
        return DEFAULT_LABELS


def _classify_section(r: Reader, d: dict[str, Any]) -> tuple[frozenset[str], float, frozenset[str]]:
    p = "classify."
    r.unknown_keys(d, {"free_mail_domains", "extra_free_mail_domains", "language_threshold",
                       "min_language_chars", "own_addresses", "trusted_authserv_ids"}, p)
    if "free_mail_domains" in d:
        free = frozenset(x.lower() for x in r.str_list(d, "free_mail_domains", p))
    else:
        free = DEFAULT_FREE_MAIL_DOMAINS
    free |= frozenset(x.lower() for x in r.str_list(d, "extra_free_mail_domains", p))
    threshold = r.number(d, "language_threshold", float, 0.80, p, above=0, high=1)
    own = frozenset(x.lower() for x in r.str_list(d, "own_addresses", p))
    return free, threshold, own


def _own_domains(own: frozenset[str], free_mail: frozenset[str]) -> frozenset[str]:
    """The company's own mail domains: those of the shared mailboxes and reps (and
    classify.own_addresses), except free-mail domains (a rep on gmail does not make gmail ours)."""
    hosts = {address.rpartition("@")[2] for address in own if "@" in address}
    return frozenset(d for d in map(registered_domain, hosts) if d and d not in free_mail)


def _authserv_ids(r: Reader, d: dict[str, Any]) -> frozenset[str]:
    """Servers whose Authentication-Results header vouches that mail From a rep is the rep's."""
    ids = frozenset(x.strip().lower() for x in r.str_list(d, "trusted_authserv_ids", "classify."))
    for bad in sorted(i for i in ids if not re.fullmatch(r"[a-z0-9.-]+", i)):
        r.problem("classify.trusted_authserv_ids", f"{bad!r} is not a host name (the authserv-id your "
                  "own mail server writes first in its Authentication-Results header)")
    return ids


def _min_language_chars(r: Reader, d: dict[str, Any]) -> int:
    return int(r.number(d, "min_language_chars", int, DEFAULT_MIN_CHARS, "classify.", low=0, high=1000))


def _form_senders(r: Reader, data: dict[str, Any]) -> tuple[FormSender, ...]:
    result = []
    for i, d in r.tables(data, "form_sender", "[[form_sender]] with name and addresses"):
        p = f"form_sender[{i}]."
        r.unknown_keys(d, {"name", "addresses"}, p)
        addresses = tuple(a.lower() for a in r.str_list(d, "addresses", p))
        if not addresses:
            r.problem(p + "addresses", "list the robot's address(es) or @domain(s)")
        result.append(FormSender(r.get(d, "name", str, f"form{i}", p, required=True), addresses))
    return tuple(result)
