"""The long-running process: one worker thread per shared mailbox, stopped cleanly by signal."""
from __future__ import annotations

import logging
import signal
import threading

from .config import Config
from .outbox import Outbox
from .pipeline import Clock, Router
from .store import open_database, utcnow
from .collisions import CollisionCheck
from .followup import FollowUp
from .replies import ReplyRecorder, ReplyWatcher, reply_settings
from .sla.webhook import WebhookSender
from .worker import MailboxWorker

log = logging.getLogger("mailrouter.daemon")


class Daemon:
    def __init__(self, config: Config, clock: Clock = utcnow):
        self.config = config
        self.stop_event = threading.Event()
        sessions = open_database(config.database)
        self.webhooks = WebhookSender() if config.sla.webhooks else None
        self.router = Router(config, sessions, clock)
        self.outbox = Outbox(config, sessions, clock)
        self.followup = FollowUp(config, sessions, clock, self.webhooks)
        self.workers = [MailboxWorker(mb, config, self.router, self.outbox, self.stop_event, self.followup)
                        for mb in config.mailboxes]
        recorder = ReplyRecorder(config, sessions, clock, CollisionCheck(config, clock, self.webhooks))
        self.reply_watchers = [ReplyWatcher(src, config, recorder, self.stop_event, reply_settings(src, config))
                               for src in config.sla.reply_sources]
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for worker in self.workers:
            self._spawn(worker.run, f"mailbox-{worker.mailbox.name}")
        for watcher in self.reply_watchers:
            self._spawn(watcher.run, f"replies-{watcher.source.name}")
        log.info("mailrouter started: %d mailbox(es), %d rule(s), %d rep(s)",
                 len(self.workers), len(self.config.rules.rules), len(self.config.reps))

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask every worker to finish the batch in hand, then wait for them."""
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout)
        if self.webhooks:
            self.webhooks.close(timeout=5.0)
        log.info("mailrouter stopped")

    def run_forever(self) -> None:
        """Run until SIGTERM or SIGINT (systemd sends SIGTERM)."""
        def on_signal(signum, _frame):
            log.info("received %s, stopping", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        while not self.stop_event.wait(1.0):
            if not any(t.is_alive() for t in self._threads):
                log.error("all mailbox workers ended; stopping")
                break
        self.stop()
