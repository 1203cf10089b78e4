"""Load and validate config.toml and the rule files, reporting every mistake at once.

Each problem names the file, the key and what is wrong, so a sysadmin can fix them all in one
pass instead of discovering them one restart (or one night) at a time.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailrouter.config import paths
from mailrouter.config.credentials import CREDENTIAL_KEYS, CredentialSource, StaticSource, read_source
from mailrouter.act.forward import SUBJECT_FIELDS
from mailrouter.model import FormSender, ParseSettings
from mailrouter.parse.freemail import DEFAULT_FREE_MAIL_DOMAINS
from mailrouter.parse.language import DEFAULT_MIN_CHARS
from mailrouter.registry.settings import RegistrySettings, read_registry_section
from mailrouter.sla.config import SlaConfig, read_sla


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


TLS_MODES = ("implicit", "starttls", "none")
STRATEGIES = ("round_robin", "least_loaded")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


DEFAULT_LARGE_MESSAGE_BYTES = 2 * 2**20


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    tls: str
    user: str
    credentials: CredentialSource  # password (env, file, command) or an OAuth2 token source
    ca_file: str | None
    timeout: float


@dataclass(frozen=True)
class MailboxConfig:
    name: str
    address: str
    display_name: str
    server: ServerConfig
    inbox: str
    idle: bool
    idle_renew: float
    poll_interval: float


@dataclass(frozen=True)
class SmtpConfig:
    server: ServerConfig
    retry_initial: float
    retry_max: float
    retry_deadline: float
    connections: int = 3  # parallel SMTP sessions when there is a queue to send


@dataclass(frozen=True)
class RepConfig:
    id: str
    name: str
    email: str
    language: str
    folder: str  # name used in folder paths (may be non-ASCII)
    active: bool


@dataclass(frozen=True)
class TeamConfig:
    id: str
    members: tuple[str, ...]
    strategy: str
    supervisor: str | None


@dataclass(frozen=True)
class FoldersConfig:
    routed: str = "Routed/{rep}"
    unrecognized: str = "Unrecognized"
    ignored: str = "Ignored"
    duplicate: str = "Duplicates"
    quarantine: str = "Quarantine"
    undeliverable: str = "Undeliverable"
    pool: str = "Pool"  # inquiries taken from a rep who did not answer, for anyone to pick up
    assign: str = "Assign"  # managers move mail into Assign/<rep> or Assign/<team> to assign it
    not_inquiry: str = "Not an inquiry"  # ... or into Assign/Not an inquiry to file it as ignored


@dataclass(frozen=True)
class DigestConfig:
    schedules: tuple = ()  # digests.Schedule: daily and/or weekly


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = False
    host: str = "127.0.0.1"  # the figures name mailboxes and reps: keep them local by default
    port: int = 9464


@dataclass(frozen=True)
class Config:
    path: Path
    database: str
    timezone: ZoneInfo
    mailboxes: tuple[MailboxConfig, ...]
    smtp: SmtpConfig
    reps: dict[str, RepConfig]
    teams: dict[str, TeamConfig]
    folders: FoldersConfig
    subject_format: str
    keyword_prefix: str
    template_dirs: tuple[Path, ...]  # searched in order: overrides, then the packaged templates
    rules_dir: Path
    parse: ParseSettings
    connection_limit: int  # IMAP sessions per server from this process
    parse_workers: int = 1  # processes parsing fetched mail; 0: in the mailbox threads
    rules: Any = None  # RuleSet, compiled by mailrouter.decide.rules (kept loose to avoid an import cycle)
    own_addresses: frozenset[str] = field(default_factory=frozenset)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    sla: SlaConfig = field(default_factory=SlaConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    digest: DigestConfig = field(default_factory=DigestConfig)
    large_message_bytes: int = DEFAULT_LARGE_MESSAGE_BYTES  # bigger messages go through the spool
    spool_dir: Path = Path("spool")  # their files, between fetch and forward


class _Reader:
    """Typed access to one TOML table that records problems instead of raising at the first."""

    def __init__(self, file: str, problems: list[Problem]):
        self.file = file
        self.problems = problems

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, key, message))

    def table(self, data: dict, key: str, prefix: str = "") -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.problem(prefix + key, f"must be a table, not {type(value).__name__}")
            return {}
        return value

    def get(self, data: dict, key: str, kind: type | tuple, default: Any, prefix: str = "",
            required: bool = False) -> Any:
        if key not in data:
            if required:
                self.problem(prefix + key, "is required")
            return default
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            self.problem(prefix + key, f"must be {_kind_name(kind)}, not {value!r}")
            return default
        return value

    def str_list(self, data: dict, key: str, prefix: str = "") -> tuple[str, ...]:
        value = data.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(prefix + key, f"must be a list of strings, not {value!r}")
            return ()
        return tuple(value)

    def unknown_keys(self, data: dict, known: set[str], prefix: str = "") -> None:
        for key in data:
            if key not in known:
                self.problem(prefix + key, f"unknown key (known: {', '.join(sorted(known))})")


def _kind_name(kind: type | tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def read_toml(path: Path, problems: list[Problem]) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        problems.append(Problem(str(path), "-", "file not found"))
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(str(path), "-", f"not valid TOML: {exc}"))
    except OSError as exc:
        problems.append(Problem(str(path), "-", f"cannot read: {exc.strerror}"))
    return {}


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read config.toml and the rule files it names; raise ConfigError listing every problem."""
    from mailrouter.decide.rules import load_rules  # rules need reps/teams from here

    path = Path(path)
    environ = dict(os.environ) if environ is None else environ
    problems: list[Problem] = []
    data = read_toml(path, problems)
    if problems:
        raise ConfigError(problems)
    r = _Reader(str(path), problems)
    r.unknown_keys(data, {"daemon", "mailbox", "smtp", "reps", "teams", "folders", "forward",
                          "classify", "form_sender", "registry", "sla", "reply_source", "metrics", "digest"})
    base = path.parent
    daemon = _daemon_section(r, r.table(data, "daemon"), base, paths.state_dir(base, environ))
    mailboxes = _mailboxes(r, data.get("mailbox", []), environ, base)
    smtp = _smtp_section(r, r.table(data, "smtp"), environ, base)
    reps = _reps(r, r.table(data, "reps"))
    teams = _teams(r, r.table(data, "teams"), reps)
    folders = _folders(r, r.table(data, "folders"))
    subject_format, keyword_prefix, template_dirs = _forward_section(r, r.table(data, "forward"), base)
    free_mail, threshold, own_extra = _classify_section(r, r.table(data, "classify"))
    form_senders = _form_senders(r, data.get("form_sender", []))
    registry = read_registry_section(r, r.table(data, "registry"))
    team_hours = {t: h for t, td in r.table(data, "teams").items()
                  if isinstance(td, dict) and isinstance(h := td.get("hours", {}), dict)}

    def reply_server(d: dict, p: str, own: set[str]) -> ServerConfig:
        r.unknown_keys(d, SERVER_KEYS | own, p)
        return _server(r, d, p, environ, base, {"implicit": 993, "starttls": 143, "none": 143})

    sla = read_sla(r, data, team_hours, daemon["timezone"].key, environ, reply_server,
                   set(reps), {m.name for m in mailboxes})
    sla = replace(sla, max_open={rep: n for rep, n in _rep_caps(r, r.table(data, "reps")).items()})
    ruleset = load_rules(daemon["rules_dir"], reps, teams, problems)
    for rule in ruleset.rules:
        if rule.ladder and rule.ladder not in sla.ladders:
            problems.append(Problem(rule.file, f"rule {rule.name!r}: ladder",
                                    f"unknown ladder {rule.ladder!r} (known: {', '.join(sorted(sla.ladders))})"))
    if problems:
        raise ConfigError(problems)
    own = frozenset({rep.email.lower() for rep in reps.values()}
                    | {mb.address.lower() for mb in mailboxes} | own_extra)
    return Config(
        path=path, database=daemon["database"], timezone=daemon["timezone"],
        mailboxes=mailboxes, smtp=smtp, reps=reps, teams=teams, folders=folders,
        subject_format=subject_format, keyword_prefix=keyword_prefix,
        template_dirs=template_dirs, rules_dir=daemon["rules_dir"], connection_limit=daemon["connection_limit"],
        parse_workers=daemon["parse_workers"],
        parse=ParseSettings(free_mail_domains=free_mail, form_senders=form_senders,
                            products=ruleset.products, language_threshold=threshold,
                            min_language_chars=_min_language_chars(r, r.table(data, "classify"))),
        rules=ruleset, own_addresses=own, registry=registry, sla=sla,
        metrics=_metrics_section(r, r.table(data, "metrics")),
        digest=_digest_section(r, r.table(data, "digest")),
        large_message_bytes=daemon["large_message_bytes"], spool_dir=daemon["spool_dir"],
    )


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _daemon_section(r: _Reader, d: dict, base: Path, state_dir: Path) -> dict:
    p = "daemon."
    r.unknown_keys(d, {"database", "timezone", "rules_dir", "max_connections_per_server", "parse_workers",
                       "large_message_bytes", "spool_dir"}, p)
    database = r.get(d, "database", str, f"sqlite:///{state_dir / 'mailrouter.db'}", p)
    if database.startswith("sqlite:///") and not database.startswith("sqlite:////"):
        # a relative SQLite path is relative to the config file, not to the current directory
        database = "sqlite:///" + str(_resolve(base, database[len("sqlite:///"):]))
    tz_name = r.get(d, "timezone", str, "Asia/Shanghai", p)
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        r.problem(p + "timezone", f"unknown time zone {tz_name!r} (use an IANA name like Asia/Shanghai)")
        tz = ZoneInfo("UTC")
    rules_dir = _resolve(base, r.get(d, "rules_dir", str, "rules", p))
    if not rules_dir.is_dir():
        r.problem(p + "rules_dir", f"folder {rules_dir} does not exist")
    limit = r.get(d, "max_connections_per_server", int, 8, p)
    if limit < 1:
        r.problem(p + "max_connections_per_server", "must be at least 1")
    workers = r.get(d, "parse_workers", int, 1, p)
    if not 0 <= workers <= 8:
        r.problem(p + "parse_workers", f"must be between 0 and 8, not {workers}")
    return {"database": database, "timezone": tz, "rules_dir": rules_dir, "connection_limit": limit,
            "parse_workers": workers, **_spool_keys(r, d, base, database, state_dir)}


def _spool_keys(r: _Reader, d: dict, base: Path, database: str, state_dir: Path) -> dict:
    p = "daemon."
    threshold = r.get(d, "large_message_bytes", int, DEFAULT_LARGE_MESSAGE_BYTES, p)
    if threshold < 1:
        r.problem(p + "large_message_bytes", f"must be a positive number of bytes, not {threshold}")
        threshold = DEFAULT_LARGE_MESSAGE_BYTES
    # next to the SQLite database; else in the state directory
    home = Path(database[len("sqlite:///"):]).parent if database.startswith("sqlite:///") else state_dir
    spool_dir = _resolve(base, r.get(d, "spool_dir", str, str(home / "spool"), p))
    if spool_dir.exists() and not spool_dir.is_dir():
        r.problem(p + "spool_dir", f"{spool_dir} exists and is not a folder")
    elif not spool_dir.exists() and not _nearest_existing(spool_dir).is_dir():
        r.problem(p + "spool_dir", f"{spool_dir} cannot be created: {_nearest_existing(spool_dir)} is not a folder")
    return {"large_message_bytes": threshold, "spool_dir": spool_dir}


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


SERVER_KEYS = {"host", "port", "tls", "user", "ca_file", "timeout"} | CREDENTIAL_KEYS


def _server(r: _Reader, d: dict, prefix: str, environ: dict[str, str], base: Path,
            default_ports: dict[str, int]) -> ServerConfig:
    host = r.get(d, "host", str, "", prefix, required=True)
    tls = r.get(d, "tls", str, "implicit", prefix)
    if tls not in TLS_MODES:
        r.problem(prefix + "tls", f"must be one of {', '.join(TLS_MODES)}, not {tls!r}")
        tls = "implicit"
    if tls == "none" and host not in ("127.0.0.1", "localhost", "::1"):
        r.problem(prefix + "tls", f"plaintext to {host} would send the password in clear; "
                  "use implicit or starttls (tls = \"none\" is for loopback only)")
    port = r.get(d, "port", int, default_ports[tls], prefix)
    ca_file = r.get(d, "ca_file", str, "", prefix) or None
    if ca_file and not _resolve(base, ca_file).is_file():
        r.problem(prefix + "ca_file", f"file {ca_file} does not exist")
    return ServerConfig(
        host=host, port=port, tls=tls, user=r.get(d, "user", str, "", prefix),
        credentials=_credentials(r, d, prefix, environ, base),
        ca_file=str(_resolve(base, ca_file)) if ca_file else None,
        timeout=r.get(d, "timeout", float, 60.0, prefix),
    )


def _credentials(r: _Reader, d: dict, prefix: str, environ: dict[str, str], base: Path) -> CredentialSource:
    if "password" in d:
        r.problem(prefix + "password", "passwords are never written in the config file; "
                  "use password_env, password_file or password_command")
    result = read_source(d, prefix, environ, base)
    for key, message in result.problems:
        r.problem(key, message)
    return result.source or StaticSource("")


def _mailboxes(r: _Reader, items: Any, environ: dict[str, str], base: Path) -> tuple[MailboxConfig, ...]:
    if not isinstance(items, list) or not items:
        r.problem("mailbox", "at least one [[mailbox]] is required")
        return ()
    result: list[MailboxConfig] = []
    for i, d in enumerate(items):
        p = f"mailbox[{i}]."
        r.unknown_keys(d, SERVER_KEYS | {"name", "address", "display_name", "inbox", "idle",
                                         "idle_renew", "poll_interval"}, p)
        name = r.get(d, "name", str, f"mailbox{i}", p, required=True)
        if any(m.name == name for m in result):
            r.problem(p + "name", f"duplicate mailbox name {name!r}")
        address = r.get(d, "address", str, "", p, required=True).strip().lower()
        renew = r.get(d, "idle_renew", float, 540.0, p)
        if not 10 <= renew <= 1740:
            r.problem(p + "idle_renew", "must be between 10 and 1740 seconds (RFC 2177: renew before 29 minutes)")
        result.append(MailboxConfig(
            name=name, address=address,
            display_name=r.get(d, "display_name", str, name.capitalize(), p),
            server=_server(r, d, p, environ, base, {"implicit": 993, "starttls": 143, "none": 143}),
            inbox=r.get(d, "inbox", str, "INBOX", p),
            idle=r.get(d, "idle", bool, True, p),
            idle_renew=renew,
            poll_interval=r.get(d, "poll_interval", float, 30.0, p),
        ))
    return tuple(result)


def _smtp_section(r: _Reader, d: dict, environ: dict[str, str], base: Path) -> SmtpConfig:
    p = "smtp."
    r.unknown_keys(d, SERVER_KEYS | {"retry_initial", "retry_max", "retry_deadline", "connections"}, p)
    if not d:
        r.problem("smtp", "an [smtp] section is required to send forwards")
    connections = r.get(d, "connections", int, 3, p)
    if not 1 <= connections <= 20:
        r.problem(p + "connections", f"must be between 1 and 20, not {connections}")
    return SmtpConfig(
        connections=connections,
        server=_server(r, d, p, environ, base, {"implicit": 465, "starttls": 587, "none": 25}),
        retry_initial=r.get(d, "retry_initial", float, 30.0, p),
        retry_max=r.get(d, "retry_max", float, 900.0, p),
        retry_deadline=r.get(d, "retry_deadline", float, 86400.0, p),
    )


def _reps(r: _Reader, d: dict) -> dict[str, RepConfig]:
    reps: dict[str, RepConfig] = {}
    for rep_id, rd in d.items():
        p = f"reps.{rep_id}."
        if not isinstance(rd, dict):
            r.problem(p[:-1], "must be a table")
            continue
        if not ID_PATTERN.match(rep_id):
            r.problem(p[:-1], "rep ids are lower-case ASCII letters, digits, - and _ "
                      "(they become IMAP keywords); put the full name in name =")
        r.unknown_keys(rd, {"name", "email", "language", "folder", "active", "max_open"}, p)
        email = r.get(rd, "email", str, "", p, required=True).strip().lower()
        if email and "@" not in email:
            r.problem(p + "email", f"{email!r} is not an email address")
        language = r.get(rd, "language", str, "en", p)
        if language not in ("en", "zh"):
            r.problem(p + "language", f"templates exist for en and zh, not {language!r}")
        reps[rep_id] = RepConfig(
            id=rep_id, name=r.get(rd, "name", str, rep_id, p), email=email, language=language,
            folder=r.get(rd, "folder", str, rep_id, p), active=r.get(rd, "active", bool, True, p))
    if not reps:
        r.problem("reps", "at least one rep is required")
    return reps


def _teams(r: _Reader, d: dict, reps: dict[str, RepConfig]) -> dict[str, TeamConfig]:
    teams: dict[str, TeamConfig] = {}
    for team_id, td in d.items():
        p = f"teams.{team_id}."
        if not isinstance(td, dict):
            r.problem(p[:-1], "must be a table")
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
    return teams


def _digest_section(r: _Reader, d: dict) -> DigestConfig:
    from mailrouter.reports.schedule import parse_schedule

    p = "digest."
    r.unknown_keys(d, {"daily", "weekly"}, p)
    schedules = []
    for kind, default in (("daily", "08:30"), ("weekly", "mon 08:30")):
        text = r.get(d, kind, str, default, p)
        if text:
            try:
                schedules.append(parse_schedule(kind, text))
            except ValueError as exc:
                r.problem(p + kind, str(exc))
    return DigestConfig(tuple(schedules))


def _metrics_section(r: _Reader, d: dict) -> MetricsConfig:
    p = "metrics."
    r.unknown_keys(d, {"enabled", "host", "port"}, p)
    return MetricsConfig(enabled=r.get(d, "enabled", bool, False, p),
                         host=r.get(d, "host", str, "127.0.0.1", p), port=r.get(d, "port", int, 9464, p))


def _rep_caps(r: _Reader, d: dict) -> dict[str, int]:
    """reps.X.max_open: a rep with this many unreplied inquiries gets no new ones."""
    caps = {}
    for rep_id, rd in d.items():
        if isinstance(rd, dict) and "max_open" in rd:
            cap = r.get(rd, "max_open", int, 0, f"reps.{rep_id}.")
            if cap < 1:
                r.problem(f"reps.{rep_id}.max_open", "must be at least 1 (leave it out for no cap)")
            caps[rep_id] = cap
    return caps


def _folders(r: _Reader, d: dict) -> FoldersConfig:
    p = "folders."
    defaults = FoldersConfig()
    names = set(FoldersConfig.__dataclass_fields__)
    r.unknown_keys(d, names, p)
    values = {n: r.get(d, n, str, getattr(defaults, n), p) for n in names}
    if "/" in values["not_inquiry"]:
        r.problem(p + "not_inquiry", "is one folder name under the assign folder, without /")
    if "{rep}" not in values["routed"]:
        r.problem(p + "routed", "must contain {rep}, e.g. \"Routed/{rep}\"")
    for n, v in values.items():
        if not v.strip() or v.upper() == "INBOX":
            r.problem(p + n, f"{v!r} cannot be used as a destination folder")
    return FoldersConfig(**values)


def _forward_section(r: _Reader, d: dict, base: Path) -> tuple[str, str, tuple[Path, ...]]:
    p = "forward."
    r.unknown_keys(d, {"subject_format", "keyword_prefix", "template_dir"}, p)
    fmt = r.get(d, "subject_format", str, "[{reinquiry}][{country}][{products}] {subject}", p)
    try:
        fmt.format(**{name: "" for name in SUBJECT_FIELDS})
    except (KeyError, IndexError, ValueError) as exc:
        r.problem(p + "subject_format", f"bad placeholder {exc}; use "
                  + " ".join("{" + name + "}" for name in SUBJECT_FIELDS))
    prefix = r.get(d, "keyword_prefix", str, "mr-", p)
    if not re.fullmatch(r"[A-Za-z0-9_-]*", prefix):
        r.problem(p + "keyword_prefix", "IMAP keywords allow only ASCII letters, digits, - and _")
    configured = r.get(d, "template_dir", str, "", p)
    template_dir = _resolve(base, configured) if configured else None
    if template_dir is not None and not template_dir.is_dir():
        r.problem(p + "template_dir", f"folder {template_dir} does not exist")
    return fmt, prefix, paths.template_dirs(base, template_dir)


def _classify_section(r: _Reader, d: dict) -> tuple[frozenset[str], float, frozenset[str]]:
    p = "classify."
    r.unknown_keys(d, {"free_mail_domains", "extra_free_mail_domains", "language_threshold",
                       "min_language_chars", "own_addresses"}, p)
    if "free_mail_domains" in d:
        free = frozenset(x.lower() for x in r.str_list(d, "free_mail_domains", p))
    else:
        free = DEFAULT_FREE_MAIL_DOMAINS
    free |= frozenset(x.lower() for x in r.str_list(d, "extra_free_mail_domains", p))
    threshold = r.get(d, "language_threshold", float, 0.80, p)
    if not 0 < threshold <= 1:
        r.problem(p + "language_threshold", "must be between 0 and 1")
    own = frozenset(x.lower() for x in r.str_list(d, "own_addresses", p))
    return free, threshold, own


def _min_language_chars(r: _Reader, d: dict) -> int:
    chars = r.get(d, "min_language_chars", int, DEFAULT_MIN_CHARS, "classify.")
    if not 0 <= chars <= 1000:
        r.problem("classify.min_language_chars", f"must be between 0 and 1000 letters, not {chars}")
        return DEFAULT_MIN_CHARS
    return chars


def _form_senders(r: _Reader, items: Any) -> tuple[FormSender, ...]:
    if not isinstance(items, list):
        r.problem("form_sender", "must be an array of tables: [[form_sender]]")
        return ()
    result = []
    for i, d in enumerate(items):
        p = f"form_sender[{i}]."
        r.unknown_keys(d, {"name", "addresses"}, p)
        addresses = tuple(a.lower() for a in r.str_list(d, "addresses", p))
        if not addresses:
            r.problem(p + "addresses", "list the robot's address(es) or @domain(s)")
        result.append(FormSender(r.get(d, "name", str, f"form{i}", p, required=True), addresses))
    return tuple(result)
