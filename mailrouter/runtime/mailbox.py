"""One shared mailbox's loop: catch up, send, file, wait for news; reconnect with backoff.

Each round is idempotent: it looks at what the database says is unfinished and at what is in
the INBOX now, so a round interrupted anywhere (crash, dropped connection) is simply repeated.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

from mailrouter.config.schema import Config, MailboxConfig
from mailrouter.runtime.assemble import Components
from mailrouter.sla.clock import arrival_time
from mailrouter.sla.sweep import FollowUp, Move
from mailrouter.metrics import Metrics
from mailrouter.intake.imap import ImapError, ImapSettings, Mailbox, keep_serving, settings_for
from mailrouter.act.outbox import Outbox
from mailrouter.act.admit import Arrival, ManualTarget, Router, describe_error
from mailrouter.act.original import InMemory, Original, Spooled
from mailrouter.intake.spool import Spool, missing_spool_files
from mailrouter.store import MessageRow
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
MAX_WAIT = 2.0  # seconds; how quickly a stop request is noticed while idling
# Managers' moves into Assign/ folders need no sub-second answer: a STATUS per folder at most
# this often keeps fast-poll rounds cheap.
ASSIGN_CHECK_INTERVAL = 5.0
# Between full INBOX reconciliations (UID SEARCH of everything + diff against the database) new
# mail is found from a UID cursor, so an idle round costs the same with 100,000 adopted messages
# as with none (issue 12). Full ones run at connect, on a UIDVALIDITY change and this often.
RECONCILE_INTERVAL = 600.0


def imap_settings(mailbox: MailboxConfig) -> ImapSettings:
    return settings_for(mailbox.server, poll_interval=mailbox.poll_interval, inbox=mailbox.inbox,
                        use_idle=mailbox.idle, idle_renew=mailbox.idle_renew)


class MailboxWorker:
    def __init__(self, mailbox: MailboxConfig, config: Config, router: Router, outbox: Outbox,
                 stop: threading.Event, followup: FollowUp | None = None, metrics: Metrics | None = None):
        self.mailbox = mailbox
        self.config = config
        self.router = router
        self.outbox = outbox
        self.stop = stop
        self.followup = followup
        self.metrics = metrics or Metrics()
        self.rounds = 0  # completed rounds, for tests and status
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
        self._pending_lock = threading.Lock()
        self._retry: set[int] = set()  # INBOX UIDs whose reading failed once: fetched again next round
        self._lease: Lease = NoLease(f"mailbox {mailbox.name}", router.sessions)  # run() takes the real one

    def rebuild(self, parts: Components) -> None:
        """Use components built from a reloaded config, from the next round on: a round in
        progress finishes with the components it started with."""
        with self._pending_lock:
            self._pending = parts

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
        work_while_held(self._lease, self.mailbox.name, lambda: keep_serving(
            self.mailbox.name, self._serve, self.stop,
            on_lost=lambda: self.metrics.imap_reconnected(self.mailbox.name)), self.stop)

    def _serve(self) -> None:
        self._adopt()
        conn = Mailbox.connect(imap_settings(self.mailbox))
        self._cursor = None  # a reconnect reconciles fully: anything may have happened meanwhile
        try:
            uidvalidity = conn.select_inbox()
            conn.ensure_folders(self._static_folders())
            log.info("%s: connected to %s (IDLE %s, MOVE %s, keywords %s)", self.mailbox.name,
                     self.mailbox.server.host, conn.uses_idle, conn.has_move, conn.custom_keywords)
            # without IDLE the round is the poll; with IDLE it is the safety net for a
            # notification a server failed to send
            interval = self.mailbox.poll_interval
            self.round(conn, uidvalidity)  # catch up on everything since the last connection
            last_round = time.monotonic()
            while not self.stop.is_set():
                if not self._lease.held():  # lost: another instance may work it now
                    return
                news = self._wait(conn, interval - (time.monotonic() - last_round))
                if self._adopt():  # new reps or teams get their folders before mail is filed there
                    conn.ensure_folders(self._static_folders())
                    interval = self.mailbox.poll_interval
                swept = self._sweep_if_due(conn)
                if news or swept or self._outbox_due() or time.monotonic() - last_round >= interval:
                    self.round(conn, uidvalidity)
                    last_round = time.monotonic()
        finally:
            conn.logout()

    def _static_folders(self) -> list[str]:
        f = self.config.folders
        routed = [f.routed.format(rep=rep.folder) for rep in self.config.reps.values()]
        return [f.unrecognized, f.ignored, f.duplicate, f.quarantine, f.undeliverable, f.pool,
                *routed, *self.assign_folders()]

    def assign_folders(self) -> dict[str, ManualTarget]:
        """Assign/<rep folder>, Assign/<team>, Assign/Not an inquiry -> what moving mail there means."""
        f = self.config.folders
        folders = {f"{f.assign}/{rep.folder}": ManualTarget("rep", rep.id) for rep in self.config.reps.values()}
        folders.update({f"{f.assign}/{team}": ManualTarget("team", team) for team in self.config.teams})
        folders[f"{f.assign}/{f.not_inquiry}"] = ManualTarget("ignore")
        return folders

    def round(self, conn: Mailbox, uidvalidity: int) -> None:
        """Admit new messages, send what is due, file what is ready; then the Assign/ folders."""
        self._inbox_round(conn, uidvalidity)
        if time.monotonic() - self._last_assign_check >= ASSIGN_CHECK_INTERVAL:
            self._last_assign_check = time.monotonic()
            if self._assign_round(conn):
                conn.select_inbox()
                # Mail that reached INBOX while another folder was selected would otherwise
                # wait for the next wake-up: IDLE reports only what arrives after it starts.
                self._inbox_round(conn, uidvalidity)
        self.rounds += 1

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
                self._one_message(folder, validity, uid, lambda uid=uid, raw=raw: self.router.assign_manually(
                    self.mailbox.name, folder, validity, uid, InMemory(raw), target))
            for uid in large:
                self._one_message(folder, validity, uid, lambda uid=uid: self._spooled(
                    conn, folder, validity, uid, lambda original: self.router.assign_manually(
                        self.mailbox.name, folder, validity, uid, original, target)))
            self.outbox.flush(self.mailbox.name)
            self._file(conn, validity, present, source=folder)
        return selected

    def _inbox_round(self, conn: Mailbox, uidvalidity: int) -> None:
        """Three batches in flight: while one is recorded here, the next is parsed in the
        parser process and the previous one's forwards go out over SMTP; each batch is filed
        once sent. Only this thread writes to the database (the sender's outcomes are recorded
        here), so sending never waits for the batch transaction's lock."""
        looked_before = self._look()
        in_inbox, arrived = self._inbox_uids(conn, uidvalidity)
        new = sorted(arrived - self.router.known_uids(self.mailbox.name, "INBOX", uidvalidity, arrived))
        new = self._first_start(conn, "INBOX", uidvalidity, new)
        self._respool_missing(conn, uidvalidity)
        batches, large = self._plan(conn, new)
        arrivals = self._arrivals(conn, new, looked_before)
        sending = None
        ahead = self._fetch_and_parse(conn, batches[0]) if batches else None
        for index in range(len(batches)):
            batch, parsing = ahead
            ahead = None
            if index + 1 < len(batches) and not self.stop.is_set():
                ahead = self._fetch_and_parse(conn, batches[index + 1])
            self.router.admit_batch(self.mailbox.name, uidvalidity, batch, parsing, arrivals)
            if sending is not None:
                self.outbox.record(sending.result())
                self._file(conn, uidvalidity, in_inbox)
            sending = self._sender.submit(self.outbox.send_due, self.mailbox.name)
            if ahead is None:
                break
        if sending is not None:
            self.outbox.record(sending.result())
        self._admit_large(conn, uidvalidity, large, arrivals)
        self.outbox.flush(self.mailbox.name)
        self._file(conn, uidvalidity, in_inbox)

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
        full = (self._cursor is None or self._cursor[0] != uidvalidity
                or time.monotonic() - self._reconciled_at >= RECONCILE_INTERVAL)
        if full:
            in_inbox: set[int] | None = set(conn.unprocessed_uids())
            arrived = in_inbox
            self._reconciled_at = time.monotonic()
        else:
            in_inbox, arrived = None, set(conn.new_uids_after(self._cursor[1]))
        arrived = arrived | self._retry  # (a UID gone meanwhile is simply not fetched)
        self._retry = set()
        last = self._cursor[1] if self._cursor and self._cursor[0] == uidvalidity else 0
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

    def _fetch_and_parse(self, conn: Mailbox, uids: list[int]) -> tuple[list[tuple[int, bytes]], Future]:
        batch = list(conn.fetch(uids))
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
            self._one_message("INBOX", uidvalidity, uid, lambda uid=uid: self._spooled(
                conn, "INBOX", uidvalidity, uid, lambda original: self.router.admit_original(
                    self.mailbox.name, uidvalidity, uid, original, (arrivals or {}).get(uid))))
            self.outbox.flush(self.mailbox.name)

    def _one_message(self, folder: str, uidvalidity: int, uid: int, action: Callable[[], object]) -> None:
        """A boundary around one message's reading and admission: what it raises stops this
        message only. The first failure is retried next round (it may pass); the same failure
        twice quarantines it. Connection trouble is the server's, not the message's: it
        propagates to the reconnect loop."""
        try:
            action()
        except ImapError:
            raise
        except Exception as exc:
            why = describe_error(exc)
            if self.router.strikes.again(Arrival(self.mailbox.name, folder, uidvalidity, uid), why):
                self.router.quarantine_unread(self.mailbox.name, folder, uidvalidity, uid,
                                              f"failed twice the same way: {why}")
                return
            log.warning("%s: uid %d in %s failed (%s); trying again next round",
                        self.mailbox.name, uid, folder, why)
            if folder == "INBOX":
                self._retry.add(uid)

    def _spooled(self, conn: Mailbox, folder: str, uidvalidity: int, uid: int,
                 record: Callable[[Original], object]) -> None:
        """Spool one message of the selected folder and `record` its decision; the file stays
        only if a pending forward now streams it."""
        path = self.spool.path_for(self.mailbox.name, folder, uidvalidity, uid)
        original = self.spool.receive(path, conn.fetch_chunks(uid))
        if original is None:
            return  # expunged meanwhile
        spooled = Spooled(original)
        try:
            record(spooled)
        finally:
            spooled.release(self.router.sessions)  # nothing to forward (a duplicate, unrecognised...)

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

    def _file(self, conn: Mailbox, uidvalidity: int, in_inbox: set[int] | None, source: str = "INBOX") -> None:
        """File the selected folder's ready copies; `in_inbox` is what the folder holds now
        (None: not listed this round, so the server is asked about the ready rows)."""
        ready = [r for r in self.router.awaiting_filing(self.mailbox.name, source) if r.uidvalidity == uidvalidity]
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

    def _refile(self, conn: Mailbox, move: Move) -> None:
        """Move a filed copy to follow its new owner (a reassignment, the pool); the ledger has
        recorded its folder already. Cosmetic, so a failure is only logged."""
        if not move.message_id or move.source == move.target:
            return
        try:
            conn.select_folder(move.source)
            uids = conn.search_header("Message-ID", move.message_id)
            if uids:
                conn.ensure_folders([move.target])
                conn.file(uids, move.target, move.keywords)
        except ImapError as exc:
            log.warning("%s: could not move %s to %s: %s", self.mailbox.name, move.message_id, move.target, exc)

    def request_sweep(self) -> None:
        """Ask for a ladder sweep on this mailbox's next turn (called by the scheduler)."""
        self.sweep_due.set()

    def _sweep_if_due(self, conn: Mailbox) -> bool:
        """Run the escalation ladder if a sweep was requested; True if it took any step.
        The sweep fetches and moves over this loop's connection (no login of its own), so
        INBOX is selected again afterwards."""
        if self.followup is None or not self.sweep_due.is_set():
            return False
        self.sweep_due.clear()
        swept = self.followup.sweep(self.mailbox, conn)
        for move in swept.moves:
            self._refile(conn, move)
        if swept.taken:
            conn.select_inbox()
        return swept.taken > 0

    def _outbox_due(self) -> bool:
        due = self.outbox.next_due_in(self.mailbox.name)
        return due is not None and due <= 0

    def _wait(self, conn: Mailbox, until_round: float) -> bool:
        """Wait briefly for news (IDLE) or the next poll; short, so a stop request is seen soon."""
        due = self.outbox.next_due_in(self.mailbox.name)
        timeout = min(MAX_WAIT, max(until_round, 0.0), MAX_WAIT if due is None else due)
        if conn.uses_idle:
            return conn.wait_for_news(max(timeout, 0.01))
        self.stop.wait(timeout)
        return False


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
