"""The long-running process: one worker thread per shared mailbox and per reply source.

SIGTERM/SIGINT: every worker finishes the batch in hand, connections close, exit 0.
SIGHUP: config, rules and templates are read again and the components rebuilt from them
(runtime/assemble.py); any mistake keeps the old ones running and logs every mistake.
SIGUSR1: every thread's stack to stderr (the journal), to see where a stuck daemon waits.
Under systemd (Type=notify) it reports READY, RELOADING,
STOPPING and pings the watchdog from the main loop.
"""
from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading
from pathlib import Path

from mailrouter.runtime import systemd as service
from mailrouter.intake.health import REFUSED, UNREACHABLE
from mailrouter.runtime.connections import Board, status_line
from mailrouter.runtime.preflight import START_WAIT, config_findings, server_problems, start_plan
from mailrouter.config.load import load_config
from mailrouter.config.reader import ConfigError
from mailrouter.config.schema import Config
from mailrouter.reports.schedule import queue_due_digests
from mailrouter.intake.imap import CONNECTION_LIMITS
from mailrouter.intake.wake import StopEvent
from mailrouter.metrics import Metrics, MetricsServer, start_metrics_server
from mailrouter.parse.process import make_parser
from mailrouter.model import Clock
from mailrouter.runtime.assemble import Components, Shared, assemble
from mailrouter.sla.replies import ReplyWatcher
from mailrouter.sla.chat import forget_posted, resume as resume_chat
from mailrouter.sla.webhook import WebhookSender
from mailrouter.intake.spool import Spool
from mailrouter.store import open_database, utcnow
from mailrouter.runtime.mailbox import MailboxWorker
from mailrouter.runtime.liveness import stuck_lanes
from mailrouter.runtime.timers import TimedWork, Timers
from mailrouter.store import optimize_database

log = logging.getLogger("mailrouter.daemon")

# How a login that failed at start is retried (intake/imap.py Backoff), for its one log line.
RETRY = {UNREACHABLE: "from 1 s, doubling to every 5 min",
         REFUSED: "every 1 to 10 min (a wrong password retried faster could lock the account)"}


def restart_only(old: Config, new: Config) -> list[str]:
    """What a reload cannot apply: threads, the parser process, the database, listeners."""
    changed = []
    if [m.name for m in new.mailboxes] != [m.name for m in old.mailboxes]:
        changed.append("[[mailbox]] names")
    if [s.name for s in new.sla.reply_sources] != [s.name for s in old.sla.reply_sources]:
        changed.append("[[reply_source]] names")
    if new.database != old.database:
        changed.append("daemon.database")
    if new.parse_workers != old.parse_workers:
        changed.append("daemon.parse_workers")
    if new.parse_timeout != old.parse_timeout:
        changed.append("daemon.parse_timeout")
    if new.parse_memory_mb != old.parse_memory_mb:
        changed.append("daemon.parse_memory_mb")
    if new.metrics != old.metrics:
        changed.append("[metrics]")
    if bool(new.sla.webhooks) != bool(old.sla.webhooks):
        changed.append("[[sla.webhook]] (none <-> some)")
    return changed


class Daemon:
    def __init__(self, config: Config, clock: Clock = utcnow):
        self.stop_event = StopEvent()  # rings every mailbox loop's waker: a stop ends their waits at once
        self.reload_requested = threading.Event()
        sessions = open_database(config.database, migrate=True)
        self.shared = Shared(sessions=sessions, clock=clock, metrics=Metrics(),
                             parser=make_parser(config.parse_workers, config.parse_timeout,
                                                config.parse_memory_mb),
                             # built once: a reload that adds the first webhook needs a restart
                             webhooks=(WebhookSender(on_posted=forget_posted(sessions))
                                       if config.sla.webhooks else None))
        self.parts = assemble(config, self.shared)
        # which workers are not connected: for the log, `status` and systemd's STATUS line
        self.board = Board(sessions, on_status=lambda _line: service.notify_status(self.summary()))
        self.workers = [MailboxWorker(mb, config, self.router, self.outbox, self.stop_event,
                                      self.followup, self.metrics, link=self.board.link(f"mailbox {mb.name}"))
                        for mb in config.mailboxes]
        for worker in self.workers:
            self.stop_event.on_set(worker.waker.poke)
        self.stop_event.on_set(CONNECTION_LIMITS.wake_waiters)  # and the sessions in line for a slot
        self.reply_watchers = [ReplyWatcher(src, config, self.recorder, self.stop_event,
                                            link=self.board.link(f"reply source {src.name}"))
                               for src in config.sla.reply_sources]
        self.timers = Timers(TimedWork(digests=self.send_digests, sweep=self.request_sweeps,
                                       gauges=lambda: self.metrics.update_from_db(self.sessions),
                                       housekeeping=lambda: optimize_database(self.sessions)))
        self._threads: list[threading.Thread] = []
        self._metrics_server: MetricsServer | None = None

    # What is running now: one frozen set, replaced whole on reload.
    config = property(lambda self: self.parts.config)
    router = property(lambda self: self.parts.router)
    outbox = property(lambda self: self.parts.outbox)
    followup = property(lambda self: self.parts.followup)
    recorder = property(lambda self: self.parts.recorder)
    sessions = property(lambda self: self.shared.sessions)
    clock = property(lambda self: self.shared.clock)
    metrics = property(lambda self: self.shared.metrics)
    parser = property(lambda self: self.shared.parser)
    webhooks = property(lambda self: self.shared.webhooks)

    def start(self) -> None:
        CONNECTION_LIMITS.limit = self.config.connection_limit
        Spool(self.config.spool_dir).remove_unreferenced(self.sessions)  # before any worker spools
        self.parser.start()
        if self.webhooks:  # chat notices a killed run queued and never posted
            resume_chat(self.sessions, self.webhooks, self.config)
        for worker in self.workers:
            self._spawn(worker.run, f"mailbox-{worker.mailbox.name}")
        for watcher in self.reply_watchers:
            self._spawn(watcher.run, f"replies-{watcher.source.name}")
        self.timers.start(self.config)
        if self.config.metrics.enabled:
            self._metrics_server = start_metrics_server(self.config.metrics.host,
                                                        self.config.metrics.port, self.metrics)
        log.info("mailrouter started: %s", self.summary())

    def summary(self) -> str:
        c = self.config
        down = status_line(self.board.outages())
        return (f"{len(c.mailboxes)} mailbox(es), {len(c.rules.rules)} rule(s), {len(c.reps)} rep(s), "
                f"{len(c.sla.reply_sources)} reply source(s)" + (f"; {down}" if down else ""))

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask every worker to finish the batch in hand, then wait for them."""
        self.stop_event.set()
        self.timers.shutdown()
        for t in self._threads:
            t.join(timeout)
        self.parser.close()
        if self.webhooks:
            self.webhooks.close(timeout=5.0)
        if self._metrics_server:
            self._metrics_server.stop()
        log.info("mailrouter stopped")

    def send_digests(self) -> int:
        """Queue the daily/weekly digests that are due (the mailbox workers send them)."""
        with self.sessions.begin() as session:
            queued = queue_due_digests(session, self.config, self.clock())
        if queued:  # committed: the sending mailbox sends them now, not at its next round
            for worker in self.workers:
                worker.waker.poke()
        return queued

    def request_sweeps(self) -> None:
        """The ladder-sweep job: each mailbox sweeps on its own thread and connection."""
        for worker in self.workers:
            worker.request_sweep()

    def reload(self, path: Path) -> bool:
        """Read config, rules and templates again and rebuild every component from them; on
        any mistake, or any error while building, keep everything that is running."""
        try:
            new = load_config(path)
            parts = assemble(new, self.shared)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused, old config kept: %s", problem)
            return False
        except Exception as exc:  # e.g. a template that does not compile: still nothing half-applied
            log.error("reload refused, old config kept: %s: %s: %s", path, type(exc).__name__, exc)
            return False
        if pending := restart_only(self.config, new):
            log.warning("%s change only with a restart; the rest is reloaded", ", ".join(pending))
        self._use(parts)
        self.board.retry_soon()  # a fixed password or address is tried now, not after the backoff
        self.timers.reschedule(new)
        log.info("reloaded %s: %s", path, self.summary())
        return True

    def _use(self, parts: Components) -> None:
        # Workers take the new set between rounds; a message already in hand finishes with the
        # components it started with.
        self.parts = parts
        for worker in self.workers:
            worker.rebuild(parts)
        for watcher in self.reply_watchers:
            watcher.rebuild(parts.config, parts.recorder)

    def run_forever(self) -> None:
        """Run until SIGTERM or SIGINT (systemd sends SIGTERM); SIGHUP reloads."""
        def on_stop(signum, _frame):
            log.info("received %s, stopping", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, lambda _s, _f: self.reload_requested.set())
        # written by the signal handler itself, so it answers even when every thread is stuck;
        # and a fatal signal (SIGBUS, SIGSEGV) leaves the same in the journal before the exit
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
        faulthandler.enable(file=sys.stderr, all_threads=True)
        for finding in config_findings(self.config):
            log.warning("%s: %s", finding.label, finding.error or "; ".join(finding.notes))
        self.check_servers()
        self.start()
        service.notify_ready(self.summary())
        self._main_loop()
        service.notify_stopping()
        self.stop()

    def check_servers(self) -> None:
        """Log in everywhere before starting. A shared need failing, or every mailbox, exits 1
        (systemd's Restart= tries again; nothing half-started); a mailbox or reply source whose
        own login fails is retried by its loop while the others run (issue 17)."""
        plan = start_plan(server_problems(self.config, wait=START_WAIT), [m.name for m in self.config.mailboxes])
        if plan.refusal is not None:
            for finding in plan.failed:
                log.error("start-up check failed: %s: %s (run `mailrouter check` for details)",
                          finding.label, finding.error)
            log.error("not starting: %s", plan.refusal)
            raise SystemExit(1)
        for finding in plan.down:
            assert finding.worker is not None and finding.error is not None
            self.board.link(finding.worker).down_at_start(finding.kind, finding.error, RETRY[finding.kind])

    def _ping_if_alive(self, limit: float, wedged: dict[str, float]) -> dict[str, float]:
        """Ping the watchdog only while every mailbox loop progresses or waits on purpose
        within WatchdogSec (`limit`): a loop stuck in one step (a parser, a server, a hook
        that never answers) gets the service restarted. The lanes stuck now, logged once."""
        stuck = stuck_lanes({w.mailbox.name: w.lane for w in self.workers}, limit)
        if not stuck:
            service.watchdog_ping()
            if wedged:
                log.info("watchdog: every mailbox is moving again; pinging")
        elif stuck.keys() != wedged.keys():
            log.error("watchdog: not pinging, systemd will restart the service: %s",
                      ", ".join(f"{name} stuck in one step for {s:.0f}s" for name, s in sorted(stuck.items())))
        return stuck

    def _main_loop(self) -> None:
        interval = service.watchdog_interval()
        tick = min(1.0, interval or 1.0)
        wedged: dict[str, float] = {}
        while not self.stop_event.wait(tick):
            if not any(t.is_alive() for t in self._threads):
                log.error("all workers ended; stopping")
                return
            if interval:
                wedged = self._ping_if_alive(2 * interval, wedged)
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                service.notify_reloading()
                self.reload(self.config.path)
                service.notify_ready(self.summary())  # systemd waits for READY after RELOADING
