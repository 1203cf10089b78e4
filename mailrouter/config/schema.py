"""What a read and validated configuration holds: dataclasses only, no reading, no I/O.

Every stage takes these types; config/load.py builds them from config.toml and the rule files.
The section types owned by a stage (RuleSet, RegistrySettings, the SLA's calendars, ladders and
webhooks) are imported from modules that depend only on config/reader.py, so there is no cycle.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from mailrouter.config.credentials import CredentialSource
from mailrouter.config.subject import DEFAULT_LABELS, DEFAULT_SUBJECT_FORMAT, SubjectFormat
from mailrouter.intake.firststart import DEFAULT_BACKFILL, Backfill, parse_backfill
from mailrouter.decide.rules import RuleSet
from mailrouter.model import ParseSettings
from mailrouter.registry.settings import RegistrySettings
from mailrouter.sla.hours import BusinessCalendar
from mailrouter.sla.ladder import COLD_LADDER, DEFAULT_LADDER, Ladder
from mailrouter.sla.webhook import WebhookTarget

DEFAULT_LARGE_MESSAGE_BYTES = 2 * 2**20
MARKER_KEY_FILE = "router.key"  # beside the database: the key of the router's signed marker


TlsMode = Literal["implicit", "starttls", "none"]
TLS_MODES: tuple[TlsMode, ...] = ("implicit", "starttls", "none")


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    tls: TlsMode
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
    # What a first start routes instead of adopting (issue 12): default unread mail of the last 24h.
    backfill: Backfill = field(default_factory=lambda: parse_backfill(DEFAULT_BACKFILL))


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
    max_open: int | None = None  # with this many unreplied inquiries, no new ones; None: no cap
    chat_ids: dict[str, str] = field(default_factory=dict)  # platform -> user id, for @mentions


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
class Schedule:
    """One digest schedule: "08:30" daily or "mon 08:30" weekly, in the daemon's time zone."""

    kind: str  # daily | weekly
    at: time
    weekday: int | None = None  # weekly only, 0 = Monday


@dataclass(frozen=True)
class DigestConfig:
    schedules: tuple[Schedule, ...] = ()


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = False
    host: str = "127.0.0.1"  # the figures name mailboxes and reps: keep them local by default
    port: int = 9464


@dataclass(frozen=True)
class ReplySource:
    """Where replies to buyers can be seen: a rep's mailbox, a journal (BCC) mailbox, or a
    shared mailbox's own Sent folder."""

    name: str
    kind: str
    server: ServerConfig | None  # None for shared_sent: the shared mailbox's own login
    rep: str | None = None  # rep_mailbox: whose mailbox
    mailbox: str | None = None  # shared_sent: which [[mailbox]]
    folder: str | None = None  # override: otherwise \Sent, then localised names
    poll_interval: float = 30.0


@dataclass(frozen=True)
class SlaConfig:
    enabled: bool = True
    sweep_interval: float = 30.0  # seconds between looks at the open assignments
    default_ladder: str = "default"
    ladders: dict[str, Ladder] = field(default_factory=lambda: {"default": DEFAULT_LADDER,
                                                                "cold": COLD_LADDER})
    default_calendar: BusinessCalendar | None = None
    calendars: dict[str, BusinessCalendar] = field(default_factory=dict)  # team -> calendar
    webhooks: tuple[WebhookTarget, ...] = ()
    reply_sources: tuple[ReplySource, ...] = ()
    allow_no_reply_source: bool = False  # the sysadmin knows no reply will ever stop the clock

    def calendar_for(self, team: str | None) -> BusinessCalendar:
        assert self.default_calendar is not None
        return self.calendars.get(team or "", self.default_calendar)

    def ladder(self, name: str | None) -> Ladder:
        return self.ladders.get(name or self.default_ladder, self.ladders[self.default_ladder])


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
    subject_format: SubjectFormat  # the forward's subject: the buyer's, plus the customer tag
    keyword_prefix: str
    template_dirs: tuple[Path, ...]  # searched in order: overrides, then the packaged templates
    rules_dir: Path
    parse: ParseSettings
    connection_limit: int  # IMAP sessions per server from this process
    parse_workers: int = 1  # processes parsing fetched mail; 0: in the mailbox threads
    parse_timeout: float = 30.0  # seconds one message's parse may take in a parser process
    rules: RuleSet = field(default_factory=lambda: RuleSet((), {}, (), ()))
    own_addresses: frozenset[str] = field(default_factory=frozenset)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    sla: SlaConfig = field(default_factory=SlaConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    digest: DigestConfig = field(default_factory=DigestConfig)
    large_message_bytes: int = DEFAULT_LARGE_MESSAGE_BYTES  # bigger messages go through the spool
    spool_dir: Path = Path("spool")  # their files, between fetch and forward
    labels: SubjectFormat = DEFAULT_LABELS  # internal labels: the rep's context line and a header
    legacy_subject_format: str | None = None  # an old forward.subject_format, read as labels
    secrets_resolved: bool = True  # False: read for an admin command, no secret was read
    language: str = "en"  # of command output (status, dry-run, report, overdue, suggest-rules) unless --language says
    # The marker's HMAC key (mailrouter/marker.py). A Config not given the installation's key
    # (runtime/routerkey.py reads it from marker_key_file) gets a random one: it still knows the
    # mail it sent itself, never mail another process signed.
    marker_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    marker_key_file: Path | None = None
    own_domains: frozenset[str] = frozenset()  # mail domains of the shared mailboxes and reps
    authserv_ids: frozenset[str] = frozenset()  # classify.trusted_authserv_ids


__all__ = ["DEFAULT_SUBJECT_FORMAT", "Config", "DigestConfig", "FoldersConfig", "MailboxConfig",
           "MetricsConfig", "RepConfig", "ReplySource", "Schedule", "ServerConfig", "SlaConfig",
           "SmtpConfig", "TeamConfig"]
