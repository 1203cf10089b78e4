"""One shared mailbox's loop: catch up, send, file, wait for news; reconnect with backoff.

Each round is idempotent: it looks at what the database says is unfinished and at what is in
the INBOX now, so a round interrupted anywhere (crash, dropped connection) is simply repeated.
"""
from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from collections import defaultdict
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Iterator

from mailrouter.config.credentials import CredentialError
from mailrouter.config.schema import Config, MailboxConfig
from mailrouter.runtime.assemble import Components
from mailrouter.runtime.liveness import Lane
from mailrouter.sla.clock import arrival_time
from mailrouter.sla.sweep import FollowUp
from mailrouter.metrics import Metrics
from mailrouter.intake.health import Link
from mailrouter.intake.imap import ImapCommandError, ImapError, ImapSettings, Mailbox, keep_serving, settings_for
from mailrouter.intake.wake import Waker
from mailrouter.act.outbox import Outbox
from mailrouter.act.admit import Arrival, ManualTarget, Router, describe_error
from mailrouter.act.original import InMemory, Original, Spooled
from mailrouter.act.filing import Refile, refile_verdict, refused
from mailrouter.act.strikes import twice
from mailrouter.intake.spool import Spool, missing_spool_files
from mailrouter.store import MessageRow, state_write_failure
from mailrouter.intake.adoption import record_adopted, watched
from mailrouter.intake.firststart import adopt_history, plan_first_start
from mailrouter.lease import Lease, NoLease, lease_for, work_while_held

log = logging.getLogger("mailrouter.mailbox")

FETCH_BATCH = 100  # messages per FETCH round trip: large enough to amortise, small enough for memory
# Bytes of messages per batch, as a multiple of daemon.large_message_bytes. Three batches are
# in flight (fetched, parsed in the child, recorded, sent), each held in several copies (the
# bytes, the pickled frame, the child's tree, the forwards): a byte budget keeps a backlog of
# messages just under the spool threshold from holding 100 x 2 MiB per batch (review P4: 820
# MiB for 120 of them). Ordinary mail (tens of KB) still fills 100 per batch.
BATCH_BYTES_FACTOR = 8
# seconds; the longest wait with nothing due. What needs the loop sooner rings its waker (a
# stop, a reload, a sweep request, the sender's outcome, a session waiting for the slot, a row
# queued in this process), so this bounds only what nobody here can ring: a forward or notice
# queued by another process (a CLI command) is sent within it.
MAX_WAIT = 30.0
# seconds a round waits for the sender before going on without it: far above a healthy server's
# answer for a batch, far below an SMTP timeout, so filing never waits for a silent server
SENDER_WAIT = 5.0
# Managers' moves into Assign/ folders need no sub-second answer: a STATUS per folder at most
# this often keeps fast-poll rounds cheap.
ASSIGN_CHECK_INTERVAL = 5.0
# Between full INBOX reconciliations (UID SEARCH of everything + diff against the database) new
# mail is found from a UID cursor, so an idle round costs the same with 100,000 adopted messages
# as with none (issue 12). Full ones run at connect, on a UIDVALIDITY change and this often.
RECONCILE_INTERVAL = 600.0
# A refile the server refuses (not one cut off) is tried this often, then the row follows the copy.
MAX_REFILE_ATTEMPTS = 5


class CredentialUnavailable(ImapError):
    """The login's secret could not be read (its command failed): retried like a lost
    connection, since a password manager that is locked now may be open in a minute."""


def imap_settings(mailbox: MailboxConfig) -> ImapSettings:
    return settings_for(mailbox.server, poll_interval=mailbox.poll_interval, inbox=mailbox.inbox,
                        use_idle=mailbox.idle, idle_renew=mailbox.idle_renew)


def assign_folders(config: Config) -> dict[str, ManualTarget]:
    """Assign/<rep folder>, Assign/<team>, Assign/Not an inquiry -> what moving mail there means."""
    f = config.folders
    folders = {f"{f.assign}/{rep.folder}": ManualTarget("rep", rep.id) for rep in config.reps.values()}
    folders.update({f"{f.assign}/{team}": ManualTarget("team", team) for team in config.teams})
    folders[f"{f.assign}/{f.not_inquiry}"] = ManualTarget("ignore")
    return folders


class MailboxWorker:
    def __init__(self, mailbox: MailboxConfig, config: Config, router: Router, outbox: Outbox,
                 stop: threading.Event, followup: FollowUp | None = None, metrics: Metrics | None = None,
                 link: Link | None = None):
        self.mailbox = mailbox
        self.link = link or Link(f"mailbox {mailbox.name}")  # says when it is not connected, and why
        self.config = config
        self.router = router
        self.outbox = outbox
        self.stop = stop
        self.followup = followup
        self.metrics = metrics or Metrics()
        self.rounds = 0  # completed rounds, for tests and status
        self.wakes = 0  # completed waits between rounds, for tests (what an idle wake costs)
        self.lane = Lane()  # read by the watchdog: progress, or waiting on purpose
        self.waker = Waker()  # ends the current wait at once: see MAX_WAIT
        # monotonic time the outbox's next pending row is due: read once per wake (_outbox_due)
        # and by each round after it writes the outbox, so the wait needs no query of its own
        self._due_at: float | None = None
        self._last_round = 0.0  # monotonic time of the last round: when the next one is due
        # set by the scheduler's ladder-sweep job (runtime/timers.py); the sweep itself runs
        # here, on this mailbox's thread, between rounds
        self.sweep_due = threading.Event()
        self._last_assign_check = 0.0
        self._looked_at: datetime | None = None  # start of the last INBOX listing (sla/clock.py)
        self._sender = ThreadPoolExecutor(1, thread_name_prefix=f"smtp-{mailbox.name}")
        self.spool = Spool(config.spool_dir)
        self._cursor: tuple[int, int] | None = None  # (UIDVALIDITY, highest INBOX UID seen)
        self._reconciled_at = 0.0
        self._watched: dict[str, int] = {}  # folder -> UIDVALIDITY the database knows it under
        self._pending: Components | None = None  # rebuilt on reload, taken between rounds
        # the sender's work in flight: recorded once done, so no round waits for SMTP
        self._sending: Future | None = None
        self._listed_fully: int | None = None  # UIDVALIDITY of the last complete full INBOX round
        self._pending_lock = threading.Lock()
        self._retry: set[int] = set()  # INBOX UIDs whose reading failed once: fetched again next round
        self._lease: Lease = NoLease(f"mailbox {mailbox.name}", router.sessions)  # run() takes the real one

    def rebuild(self, parts: Components) -> None:
        """Use components built from a reloaded config, from the next round on: a round in
        progress finishes with the components it started with."""
        with self._pending_lock:
            self._pending = parts
        self.waker.poke()

    def _adopt(self) -> bool:
        with self._pending_lock:
            parts, self._pending = self._pending, None
        if parts is None:
            return False
        self.config, self.router, self.outbox, self.followup = (
            parts.config, parts.router, parts.outbox, parts.followup)
        # a changed login takes effect on the next connection
        self.mailbox = next((m for m in parts.config.mailboxes if m.name == self.mailbox.name), self.mailbox)
        self.spool = Spool(parts.config.spool_dir)
        return True

    def run(self) -> None:
        """Serve the mailbox until `stop` is set; connection trouble means reconnect, not exit.
        Only while this instance holds the mailbox's lease (lease.py): another instance on the
        same database waits, and takes over when this one dies."""
        self._lease = lease_for(f"mailbox {self.mailbox.name}", self.config.database, self.router.sessions)
        self.lane.idle()  # waiting for the lease (a standby instance) is waiting on purpose
        work_while_held(self._lease, self.mailbox.name, lambda: keep_serving(
            self.mailbox.name, self._serve, self.stop,
            on_lost=lambda: self.metrics.imap_reconnected(self.mailbox.name),
            explain=lambda exc: state_write_failure(exc, self.config.database),
            progress=lambda: self.rounds, link=self.link), self.stop)
        try:
            if self._sending is not None and self._sending.done():
                self._settle_sending()  # a clean stop records what SMTP accepted; a hung send is not waited for
        except Exception as exc:  # noqa: BLE001 - stopping anyway; the accepted log keeps it
            log.warning("%s: forwards accepted at stop not recorded (%s); the next start records them "
                        "from the accepted log", self.mailbox.name, exc)

    def _serve(self) -> None:
        self.lane.beat()
        try:
            handed_on = False
            while not self.stop.is_set() and self._session(quiet=handed_on):
                handed_on = True  # our turn ended: queue for the next one when it is due
                self._wait_for_turn()
        finally:
            self.lane.idle()  # ended, or keep_serving's backoff before the next session

    def _session(self, quiet: bool = False) -> bool:
        """One IMAP session; True when it ended to hand its slot to a waiting mailbox."""
        self._adopt()
        try:
            settings = imap_settings(self.mailbox)
        except CredentialError as exc:  # a password_command failing: one line, then the backoff
            raise CredentialUnavailable(str(exc)) from None
        conn = Mailbox.connect(settings, quiet=quiet, waker=self.waker, stop=self.stop)
        self.link.connected()
        if not quiet:  # a reconnect reconciles fully: anything may have happened meanwhile
            self._cursor = None  # (a turn taken under the connection limit carries on from the cursor)
        try:
            uidvalidity = conn.select_inbox()
            conn.ensure_folders(self._static_folders())
            log.log(logging.DEBUG if quiet else logging.INFO,
                    "%s: connected to %s (IDLE %s, MOVE %s, keywords %s)", self.mailbox.name,
                     self.mailbox.server.host, conn.uses_idle, conn.has_move, conn.custom_keywords)
            # without IDLE the round is the poll; with IDLE it is the safety net for a
            # notification a server failed to send
            interval = self.mailbox.poll_interval
            self.round(conn, uidvalidity)  # catch up on everything since the last connection
            fresh = True  # no wait since the last round
            while not self.stop.is_set():
                # lost, or handed to an instance with fewer: only with no send in flight and
                # every outcome recorded, or the taker would forward it again. Checked here too,
                # not only after the wait: a loop taking turns for a session slot never waits.
                if not self._lease.held(clean=self._sending is None):
                    return False
                # more mailboxes than daemon.max_connections_per_server: IDLE would keep the slot
                # for hours and starve the others, so after a round it goes to the next in line
                handing_on = conn.slot_wanted() and self._sending is None
                # a sweep asked for runs before any hand-over (a turn may be this one's only),
                # and its round sends what it queued; a hand-over after a wait takes a last look
                # first: until its next turn this mailbox is polled
                if self._sweep_if_due(conn) or (handing_on and not fresh):
                    self.round(conn, uidvalidity)
                    fresh = True
                    continue
                if handing_on:
                    return True
                news = self._wait(conn, interval - (time.monotonic() - self._last_round))
                fresh = False
                if self.stop.is_set():
                    return False
                if not self._lease.held(clean=self._sending is None):  # the wait may have been long
                    return False
                if self._adopt():  # new reps or teams get their folders before mail is filed there
                    conn.ensure_folders(self._static_folders())
                    interval = self.mailbox.poll_interval
                self.lane.beat()
                # the outbox last: a round that runs anyway reads it itself (a sweep asked
                # for is done at the top of the loop, and its round with it)
                if news or time.monotonic() - self._last_round >= interval or self._outbox_due():
                    self.round(conn, uidvalidity)
                    fresh = True
            return False
        finally:
            conn.logout()

    def _wait_for_turn(self) -> None:
        """After handing the session slot on, the mailbox is polled: it queues for its next
        turn when its round is due (poll_interval after the last), or at once for what cannot
        wait: a stop, a reload, a sweep, the outbox's next row. (Queuing again at once made
        50 mailboxes on 8 slots log in and out without pause: most of a core.)"""
        self.waker.clear()  # the ring that asked for the slot: answered by handing it on
        self.lane.idle()
        try:
            while not (self.stop.is_set() or self.sweep_due.is_set() or self._reload_pending()):
                until_round = self.mailbox.poll_interval - (time.monotonic() - self._last_round)
                timeout = wait_timeout(until_round, self._read_due() - time.monotonic())
                if timeout <= 0:
                    return
                self.waker.wait(timeout)
        finally:
            self.lane.beat()

    def _reload_pending(self) -> bool:
        with self._pending_lock:
            return self._pending is not None

    def _static_folders(self) -> list[str]:
        f = self.config.folders
        routed = [f.routed.format(rep=rep.folder) for rep in self.config.reps.values()]
        return [f.unrecognized, f.ignored, f.duplicate, f.quarantine, f.undeliverable, f.pool,
                *routed, *self.assign_folders()]

    def assign_folders(self) -> dict[str, ManualTarget]:
        return assign_folders(self.config)

    def round(self, conn: Mailbox, uidvalidity: int) -> None:
        """Refile what changed owner; admit new messages, send what is due, file what is ready;
        then the Assign/ folders."""
        if self._refile_round(conn):
            conn.select_inbox()
        self._inbox_round(conn, uidvalidity)
        if time.monotonic() - self._last_assign_check >= ASSIGN_CHECK_INTERVAL:
            self._last_assign_check = time.monotonic()
            if self._assign_round(conn):
                conn.select_inbox()
                # Mail that reached INBOX while another folder was selected would otherwise
                # wait for the next wake-up: IDLE reports only what arrives after it starts.
                self._inbox_round(conn, uidvalidity)
        self.rounds += 1
        self._last_round = time.monotonic()

    def _assign_round(self, conn: Mailbox) -> bool:
        """Route what managers moved into Assign/ folders; True if another folder was selected."""
        selected = False
        for folder, target in self.assign_folders().items():
            if conn.count(folder) == 0:
                if folder not in self._watched:
                    # watched from now on, while empty: what a manager moves here later is an
                    # instruction to route, not history to adopt
                    selected = True
                    self._first_start(conn, folder, conn.select_folder(folder), [])
                continue
            selected = True
            validity = conn.select_folder(folder)
            present = set(conn.unprocessed_uids())
            new = sorted(present - self.router.known_uids(self.mailbox.name, folder, validity, present))
            new = self._first_start(conn, folder, validity, new)
            new, large = self._split_large(conn, new)
            for uid, raw in conn.fetch(new):
                self._one_message(folder, validity, uid, partial(
                    self.router.assign_manually, self.mailbox.name, folder, validity, uid, InMemory(raw), target))
            for uid in large:
                assign = partial(self.router.assign_manually, self.mailbox.name, folder, validity, uid, target=target)
                self._one_message(folder, validity, uid, partial(self._spooled, conn, folder, validity, uid, assign))
            self._settle_sending()
            self.outbox.flush(self.mailbox.name)
            self._read_due()  # the flush may have left retries: the wait must know their time
            self._file(conn, validity, present, source=folder)
            self.lane.beat()
        return selected

    def _inbox_round(self, conn: Mailbox, uidvalidity: int) -> None:
        """Batches in flight: while one is recorded here, the next is parsed in the parser
        process and forwards go out over SMTP in the sender thread. Filing never waits for
        SMTP: each batch's copies that need no forward are filed at once, forwarded ones once
        the sender's outcome is recorded. Only this thread writes to the database (the
        sender's outcomes are recorded here), so sending never waits for the batch
        transaction's lock."""
        looked_before = self._look()
        in_inbox, arrived = self._inbox_uids(conn, uidvalidity)
        new = sorted(arrived - self.router.known_uids(self.mailbox.name, "INBOX", uidvalidity, arrived))
        new = self._first_start(conn, "INBOX", uidvalidity, new)
        self._respool_missing(conn, uidvalidity)
        batches, large = self._plan(conn, new)
        arrivals = self._arrivals(conn, new, looked_before)
        ahead = self._fetch_and_parse(conn, batches[0]) if batches else None
        for index in itertools.count(1):
            if ahead is None:
                break
            batch, parsing = ahead
            ahead = None
            if index < len(batches) and not self.stop.is_set():
                ahead = self._fetch_and_parse(conn, batches[index])
            self.router.admit_batch(self.mailbox.name, uidvalidity, batch, parsing, arrivals)
            self.lane.beat()
            self._file(conn, uidvalidity, in_inbox)  # what needs no forward, and what was sent before
            self._send_in_background(SENDER_WAIT)
            self.lane.beat()
        if large:
            self._settle_sending()  # big ones are sent one by one, from their spool files
            self._admit_large(conn, uidvalidity, large, arrivals)
        self._send_in_background(SENDER_WAIT)
        others = self._file(conn, uidvalidity, in_inbox)
        if in_inbox is not None and not self.stop.is_set():
            self._listed_fully = uidvalidity
        if self._listed_fully == uidvalidity:
            self._reconcile_stranded(others)

    def _reconcile_stranded(self, stranded: list[MessageRow]) -> None:
        """Rows ready to file under an older UIDVALIDITY (as _file just read them: one query
        per round for both). A whole round under this one has admitted every copy INBOX holds,
        and a copy found again took its row along (same bytes); so these copies are gone:
        moved by a run that died before recording it."""
        if stranded:
            self.router.mark_filed(stranded, note="not in INBOX after a UIDVALIDITY change")

    def _send_in_background(self, wait: float = 0.0) -> None:
        """Record the sender's outcome once it has one (waiting up to `wait` s: a healthy SMTP
        server answers within it, so a batch's forwards are filed in the same round), then
        start the sender on what is due if it is idle."""
        if self._sending is not None:
            try:
                results = self._sending.result(timeout=wait)
            except FutureTimeout:
                return  # SMTP is slow or silent: the round goes on; the outcome is recorded later
            finally:
                if self._sending.done():  # a failed send raises once, never again every round
                    self._sending = None
            self.outbox.record(results)
        if self._outbox_has_due():  # also leaves _due_at fresh for the next wait
            self._sending = self._sender.submit(self.outbox.send_due, self.mailbox.name)
            # its outcome ends the wait it finishes in: recorded and filed at once, no polling
            self._sending.add_done_callback(lambda _done: self.waker.poke())

    def _settle_sending(self) -> None:
        """Wait for the sender and record its outcome: before a flush on this thread, which
        must never send the same rows alongside it."""
        if self._sending is not None:
            sending, self._sending = self._sending, None
            self.outbox.record(sending.result())

    def _look(self) -> datetime | None:
        """When INBOX was last looked at before this round: the previous round's listing, or
        after a start the daemon's latest decision here (None: never, a first start)."""
        previous, self._looked_at = self._looked_at, self.router.clock()
        return previous if previous is not None else self.router.last_decision_at(self.mailbox.name)

    def _arrivals(self, conn: Mailbox, uids: list[int], looked_before: datetime | None) -> dict[int, datetime]:
        """uid -> arrival: the server's INTERNALDATE within the bounds of sla/clock.py."""
        if not uids:
            return {}
        dates = {found.uid: found.internal_date for found in conn.flags_and_dates(uids)}
        now = self.router.clock()
        return {uid: arrival_time(dates.get(uid), now, looked_before) for uid in uids}

    def _inbox_uids(self, conn: Mailbox, uidvalidity: int) -> tuple[set[int] | None, set[int]]:
        """(all INBOX UIDs or None, UIDs to check against the database). A full reconciliation
        lists everything; otherwise only UIDs above the cursor, and filing asks the server
        about the few rows it files instead of about the whole INBOX."""
        cursor = self._cursor if self._cursor is not None and self._cursor[0] == uidvalidity else None
        in_inbox: set[int] | None
        if cursor is None or time.monotonic() - self._reconciled_at >= RECONCILE_INTERVAL:
            in_inbox = set(conn.unprocessed_uids())
            arrived = in_inbox
            self._reconciled_at = time.monotonic()
        else:
            in_inbox, arrived = None, set(conn.new_uids_after(cursor[1]))
        arrived = arrived | self._retry  # (a UID gone meanwhile is simply not fetched)
        self._retry = set()
        last = cursor[1] if cursor else 0
        # Advancing before admission is safe: a round that fails raises into a reconnect (which
        # resets the cursor) and one cut short by stop ends the worker.
        self._cursor = (uidvalidity, max([last, *arrived]))
        return in_inbox, arrived

    def _first_start(self, conn: Mailbox, folder: str, uidvalidity: int, new: list[int]) -> list[int]:
        """A folder never watched before: adopt what it holds, keep only the backfill to route.
        A known folder under a new UIDVALIDITY: adopt again what predates its first start.
        Decisions are in intake/firststart.py, the rows in intake/adoption.py."""
        if self._watched.get(folder) == uidvalidity:
            return new  # the usual round: one dict lookup (an empty folder is recorded as watched too)
        sessions, now, name = self.router.sessions, self.router.clock(), self.mailbox.name
        known = watched(sessions, name, folder)
        label = name if folder == "INBOX" else f"{name} {folder}"
        if known is None:
            plan = plan_first_start(conn.flags_and_dates(new), self.mailbox.backfill, now)
            record_adopted(sessions, name, folder, uidvalidity, plan.adopt, now)
            log.info("%s", plan.summary(label, self.mailbox.backfill))
            route = list(plan.route)
        elif known.uidvalidity != uidvalidity:
            history = adopt_history(conn.flags_and_dates(new), known.first_seen_at)
            record_adopted(sessions, name, folder, uidvalidity, history, now, known.first_seen_at)
            log.info("%s: UIDVALIDITY %d -> %d: adopted %d again (older than the first start)",
                     label, known.uidvalidity, uidvalidity, len(history))
            route = sorted(set(new) - set(history))
        else:
            route = new
        self._watched[folder] = uidvalidity
        return route

    def _fetch_and_parse(self, conn: Mailbox, uids: list[int]) -> tuple[list[tuple[int, bytes]], Future | None]:
        """The batch, and its parse under way in the parser process (None: parsed at admission)."""
        batch = list(conn.fetch(uids))
        self.lane.beat()
        return batch, self.router.parse_ahead(batch)

    def _plan(self, conn: Mailbox, uids: list[int]) -> tuple[list[list[int]], list[int]]:
        """(batches of small messages within the count and byte budgets, large messages)."""
        if not uids:
            return [], []
        sizes, limit = conn.sizes(uids), self.config.large_message_bytes
        small = [u for u in uids if sizes.get(u, 0) <= limit]
        large = [u for u in uids if sizes.get(u, 0) > limit]
        return byte_batches(small, sizes, FETCH_BATCH, BATCH_BYTES_FACTOR * limit), large

    def _split_large(self, conn: Mailbox, uids: list[int]) -> tuple[list[int], list[int]]:
        """(small, large) by RFC822.SIZE: large ones go through the spool, one at a time."""
        if not uids:
            return [], []
        sizes, limit = conn.sizes(uids), self.config.large_message_bytes
        return [u for u in uids if sizes.get(u, 0) <= limit], [u for u in uids if sizes.get(u, 0) > limit]

    def _admit_large(self, conn: Mailbox, uidvalidity: int, uids: list[int],
                     arrivals: dict[int, datetime] | None = None) -> None:
        """Each big message: spooled (fsynced), decided, sent from its file, before the next."""
        for uid in uids:
            if self.stop.is_set():
                return
            admit = partial(self.router.admit_original, self.mailbox.name, uidvalidity, uid,
                            arrived=(arrivals or {}).get(uid))
            self._one_message("INBOX", uidvalidity, uid, partial(self._spooled, conn, "INBOX", uidvalidity, uid, admit))
            self.outbox.flush(self.mailbox.name)
            self.lane.beat()

    def _one_message(self, folder: str, uidvalidity: int, uid: int, action: Callable[[], object]) -> None:
        """A boundary around one message's reading and admission: what it raises stops this
        message only. The try is marked in the database first, so a kill in the middle of it
        counts too (act/strikes.py). The first failure is retried next round (it may pass);
        the same failure twice quarantines it, without a third try. Connection trouble is the
        server's, not the message's: it propagates to the reconnect loop."""
        place, strikes = Arrival(self.mailbox.name, folder, uidvalidity, uid), self.router.strikes
        doomed = strikes.begin([place]).get(place)
        if doomed is not None:
            self.router.quarantine_unread(self.mailbox.name, folder, uidvalidity, uid, doomed)
            return
        try:
            action()
        except ImapError:
            strikes.ended([place])
            raise
        except Exception as exc:
            if state_write_failure(exc, self.config.database):
                # a full or failing state disk is not this message's fault: the loop reports it,
                # and the try is unmarked, or the next round would count it as a death
                self.router.unmark_tries([place])
                raise
            why = describe_error(exc)
            if strikes.failed(place, why):
                self.router.quarantine_unread(self.mailbox.name, folder, uidvalidity, uid, twice(why))
                return
            log.warning("%s: uid %d in %s failed (%s); trying again next round",
                        self.mailbox.name, uid, folder, why)
            if folder == "INBOX":
                self._retry.add(uid)
        else:
            strikes.clear([place])  # recorded, or expunged meanwhile: nothing left to count

    def _spooled(self, conn: Mailbox, folder: str, uidvalidity: int, uid: int,
                 record: Callable[[Original], object]) -> None:
        """Spool one message of the selected folder and `record` its decision; the file stays
        only if a pending forward now streams it."""
        path = self.spool.path_for(self.mailbox.name, folder, uidvalidity, uid)
        original = self.spool.receive(path, self._beating(conn.fetch_chunks(uid)))
        if original is None:
            return  # expunged meanwhile
        spooled = Spooled(original)
        try:
            record(spooled)
        finally:
            spooled.release(self.router.sessions)  # nothing to forward (a duplicate, unrecognised...)

    def _beating(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """A 30 MB message is many steps (1 MiB pieces), not one long one."""
        for chunk in chunks:
            self.lane.beat()
            yield chunk

    def _respool_missing(self, conn: Mailbox, uidvalidity: int) -> None:
        """A pending forward whose spool file is gone (deleted by hand, a lost disk) gets it
        back from the copy still in INBOX; failing that the outbox gives up on it, with why."""
        for path, uid, sha in missing_spool_files(self.router.sessions, self.mailbox.name, uidvalidity):
            original = self.spool.receive(Path(path), conn.fetch_chunks(uid))
            if original is not None and original.sha256 != sha:
                Path(path).unlink()  # another message under that UID: never forward the wrong one
                original = None
            log.warning("%s: spool file %s was missing; %s", self.mailbox.name, path,
                        "fetched again" if original else "not found again in INBOX")

    def _file(self, conn: Mailbox, uidvalidity: int, in_inbox: set[int] | None,
              source: str = "INBOX") -> list[MessageRow]:
        """File the selected folder's ready copies; `in_inbox` is what the folder holds now
        (None: not listed this round, so the server is asked about the ready rows). Returns
        the ready rows under another UIDVALIDITY, left alone."""
        waiting = self.router.awaiting_filing(self.mailbox.name, source)
        ready = [r for r in waiting if r.uidvalidity == uidvalidity]
        if in_inbox is None:  # a cursor round: ask about these rows only
            in_inbox = conn.present([r.uid for r in ready]) if ready else set()
        gone = [r for r in ready if r.uid not in in_inbox]
        if gone:  # moved by a run that crashed before recording it, or by a person
            self.router.mark_filed(gone, note="no longer in INBOX")
        for (folder, keywords), rows in group_by_destination(r for r in ready if r.uid in in_inbox):
            try:
                conn.ensure_folders([folder])
                conn.file([r.uid for r in rows], folder, keywords)
            except ImapError as exc:
                self.router.mark_filing_failed(rows, str(exc))
                raise
            self.router.mark_filed(rows)
            in_inbox.difference_update(r.uid for r in rows)
            self.lane.beat()
        return [r for r in waiting if r.uidvalidity != uidvalidity]

    def _refile_round(self, conn: Mailbox) -> bool:
        """Move the filed copies whose owner changed (a reassignment, the pool) to the folder
        their rows now name; True if another folder was selected. The rows keep where each
        copy was until it is moved, so a move cut off by a crash or a lost connection is done
        by the next round, and one that happened unrecorded is found done."""
        selected = False
        for row in self.router.awaiting_refile(self.mailbox.name):
            selected = True
            verdict = refile_verdict(row, self._find(conn, row.refile_from, row.message_id),
                                     partial(self._find, conn, row.folder, row.message_id))
            self._carry_out(conn, row, verdict)
            self.lane.beat()
        return selected

    def _find(self, conn: Mailbox, folder: str | None, message_id: str) -> list[int]:
        """UIDs of the message in `folder`; none if the folder is gone (deleted by a person)."""
        if not folder or not message_id:
            return []
        try:
            conn.select_folder(folder)
        except ImapCommandError:
            return []
        return conn.search_header("Message-ID", message_id)

    def _carry_out(self, conn: Mailbox, row: MessageRow, verdict: Refile) -> None:
        if verdict.uids:
            try:
                conn.ensure_folders([row.folder])
                conn.file(verdict.uids, row.folder, row.keywords.split())
            except ImapCommandError as exc:  # refused, not cut off: a few more tries, then the row follows the copy
                if row.file_attempts + 1 < MAX_REFILE_ATTEMPTS:
                    self.router.refile_failed(row, str(exc))
                    return
                verdict = refused(row, str(exc))
        self.router.refile_settled(row, verdict.stays, verdict.note)
        if verdict.note:
            log.warning("%s: %s %s", self.mailbox.name, row.message_id, verdict.note)

    def request_sweep(self) -> None:
        """Ask for a ladder sweep on this mailbox's next turn (called by the scheduler)."""
        self.sweep_due.set()
        self.waker.poke()

    def _sweep_if_due(self, conn: Mailbox) -> bool:
        """Run the escalation ladder if a sweep was requested; True if it took any step.
        The sweep fetches over this loop's connection (no login of its own), so INBOX is
        selected again afterwards; the copies it refiled are moved by the next round."""
        if not self.sweep_due.is_set():
            return False
        self.sweep_due.clear()  # answered even with nothing to sweep: a set flag ends every turn's wait
        if self.followup is None:
            return False
        swept = self.followup.sweep(self.mailbox, conn)
        self.lane.beat()
        if swept.taken:
            conn.select_inbox()
        return swept.taken > 0

    def _outbox_due(self) -> bool:
        """A round is due for the outbox: the sender finished (record, file), or, with the
        sender idle, a row is due (this wake's one query; also what the next wait is bounded by)."""
        if self._sending is not None:
            return self._sending.done()
        return self._outbox_has_due()

    def _outbox_has_due(self) -> bool:
        return self._read_due() <= time.monotonic()

    def _read_due(self) -> float:
        """Ask the outbox when its next row is due; remember it on the monotonic clock (inf: none)."""
        due = self.outbox.next_due_in(self.mailbox.name)
        self._due_at = None if due is None else time.monotonic() + due
        return math.inf if self._due_at is None else self._due_at

    def _wait(self, conn: Mailbox, until_round: float) -> bool:
        """Wait for news (IDLE) or the next poll, until the next thing due: the round, the
        outbox's next row as last read (no query here), at most MAX_WAIT. The waker ends it
        early: a stop, a reload, a sweep, the sender done (so its due time is not waited
        for meanwhile), a session waiting for the slot."""
        due = None if self._sending is not None or self._due_at is None else self._due_at - time.monotonic()
        timeout = wait_timeout(until_round, due)
        self.lane.idle()
        try:
            if conn.uses_idle:
                return conn.wait_for_news(max(timeout, 0.01), self.waker)
            self.waker.wait(timeout)
            return False
        finally:
            self.wakes += 1
            self.lane.beat()


def wait_timeout(until_round: float, outbox_due: float | None) -> float:
    """Seconds to wait: until the next round or the outbox's next due row, at most MAX_WAIT."""
    return min(MAX_WAIT, max(until_round, 0.0), MAX_WAIT if outbox_due is None else max(outbox_due, 0.0))


def byte_batches(uids: list[int], sizes: dict[int, int], count: int, budget: int) -> list[list[int]]:
    """`uids` in order, cut into batches of at most `count` messages and `budget` bytes (a
    message bigger than the budget alone in its batch)."""
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if current and (len(current) >= count or total + size > budget):
            batches.append(current)
            current, total = [], 0
        current.append(uid)
        total += size
    if current:
        batches.append(current)
    return batches


def group_by_destination(rows: Iterable[MessageRow]) -> list[tuple[tuple[str, tuple[str, ...]], list[MessageRow]]]:
    groups: dict[tuple[str, tuple[str, ...]], list[MessageRow]] = defaultdict(list)
    for row in rows:
        groups[(row.folder, tuple(row.keywords.split()))].append(row)
    return list(groups.items())
