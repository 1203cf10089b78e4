"""Build the daemon's components from one Config: at start and again on every reload.

A reload builds a fresh set from the new Config and hands it over whole, instead of pushing
`.config` into objects that may have derived something from the old one (the reply recorder's
rep addresses, the collision check's config, the templates). What must outlive a reload - the
database, the clock, the metrics, the parser process, the webhook sender, the lock that makes
admission one-at-a-time across mailboxes - is built once and passed in as Shared. (The record
of messages that failed once is in the database, act/strikes.py: it outlives a restart too.)
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from mailrouter.act.admit import Clock, Router
from mailrouter.act.outbox import Outbox
from mailrouter.config.schema import Config
from mailrouter.metrics import Metrics
from mailrouter.parse.process import Parser
from mailrouter.registry.collisions import CollisionCheck
from mailrouter.runtime.routerkey import with_installation_key
from mailrouter.sla.replies import ReplyRecorder
from mailrouter.sla.sweep import FollowUp
from mailrouter.sla.webhook import WebhookSender


@dataclass(frozen=True)
class Shared:
    sessions: sessionmaker[Session]
    clock: Clock
    metrics: Metrics
    parser: Parser
    webhooks: WebhookSender | None
    admission_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Components:
    config: Config
    router: Router
    outbox: Outbox
    followup: FollowUp
    recorder: ReplyRecorder


def assemble(config: Config, shared: Shared) -> Components:
    """Every component that reads the config, built from `config` alone. Raises whatever a
    component raises while building (a template that does not compile, say): the caller keeps
    the components it has."""
    s = shared
    config = with_installation_key(config)  # every part signs and checks with the one key
    router = Router(config, s.sessions, s.clock, s.metrics, s.parser, lock=s.admission_lock)
    return Components(
        config=config,
        router=router,
        outbox=Outbox(config, s.sessions, s.clock, s.metrics),
        # the ladder parses originals again within the same bounds and strikes as admission
        followup=FollowUp(config, s.sessions, s.clock, s.webhooks, metrics=s.metrics,
                          parse=router.parse_bounded, strikes=router.strikes),
        recorder=ReplyRecorder(config, s.sessions, s.clock, CollisionCheck(config, s.clock, s.webhooks),
                               s.metrics),
    )
