"""Issue 17 item 2: what several instances on one database share stays right when they work at
the same moment. Two Routers (each with its own process lock, as two instances have) admit for
different mailboxes at once: the team's rotation, the open counts and the duplicate check must
come out as if one instance had done it all; two digest jobs queue each digest once. On a real
PostgreSQL, where the race was, and on SQLite, whose writers take turns anyway."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from mailrouter.act.admit import Router
from mailrouter.parse.process import Parsed, parse_one
from mailrouter.reports.schedule import queue_due_digests
from mailrouter.store import (AssignmentRow, DigestSentRow, MessageRow, OutboxRow, TeamCursorRow, close_database,
                             open_database)
from mailrouter.testing.samples import FRENCH, ITALIAN, SPANISH, compose
from tests.factories import example_config

PER_INSTANCE = 20
# team -> (its members, how distinct inquiries for it are written): rule "europe" picks by round
# robin between zhang and li, rules "latin-america"/"spanish-portuguese" the least loaded of chen and li
TEAMS = {
    "europe": (("zhang", "li"), lambda i: compose(
        f"Buyer {i} <buyer{i}@maison{i}.{'fr' if i % 2 else 'it'}>", f"Demande #{i}",
        f"{FRENCH if i % 2 else ITALIAN}\n\nRef. {i}", n=i)),
    "americas": (("chen", "li"), lambda i: compose(
        f"Buyer {i} <compras{i}@empresa{i}.com.mx>", f"Cotización #{i}", f"{SPANISH}\n\nRef. {i}", n=i)),
}


def done(value: list[Parsed]) -> "Future[list[Parsed]]":
    future: Future[list[Parsed]] = Future()
    future.set_result(value)
    return future


def admit_each(router: Router, mailbox: str, raws: list[bytes], go: threading.Barrier,
               errors: list[BaseException]) -> None:
    """One message per batch, parsed beforehand, so this instance is nearly always inside an
    admission transaction: the window a second instance could meet it in is as wide as can be."""
    parsed = [parse_one(raw, router.config.parse) for raw in raws]
    go.wait(60)
    try:
        for uid, (raw, p) in enumerate(zip(raws, parsed), start=1):
            router.admit_batch(mailbox, 1, [(uid, raw)], parsing=done([p]))
    except BaseException as exc:  # noqa: BLE001 (reported by the test, not lost in the thread)
        errors.append(exc)


@pytest.mark.parametrize("team, cursor", [("europe", None), ("europe", "li"), ("americas", None)],
                         ids=["round-robin-first-turn", "round-robin", "least-loaded"])
def test_two_instances_admitting_at_once_share_a_team_s_turns_strictly(database_url, team, cursor):
    """A rotation never gives one rep two in a row; least loaded balances. Before, both instances
    read the same cursor or counts and picked the same rep; on a team's first turn both inserted
    its cursor row and one batch failed on the primary key."""
    url = database_url
    config = replace(example_config(), database=url)
    members, inquiry = TEAMS[team]
    try:
        if cursor:
            with open_database(url).begin() as session:
                session.add(TeamCursorRow(team=team, last_rep=cursor))
        # two instances: each its own Router and so its own in-process lock
        first, second = Router(config, open_database(url)), Router(config, open_database(url))
        go, errors = threading.Barrier(2), []
        threads = [threading.Thread(target=admit_each, args=(
            router, mailbox, [inquiry(i) for i in range(start, start + PER_INSTANCE)], go, errors))
            for router, mailbox, start in ((first, "sales", 0), (second, "info", 1000))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert not errors, errors
        with open_database(url)() as session:
            outcomes = Counter(session.scalars(select(MessageRow.outcome)))
            reps = list(session.scalars(select(AssignmentRow.rep).where(AssignmentRow.team == team)
                                        .order_by(AssignmentRow.id)))
    finally:
        close_database(url)
    assert outcomes == {"routed": 2 * PER_INSTANCE}
    assert len(reps) == 2 * PER_INSTANCE
    twice_in_a_row = [i for i in range(1, len(reps)) if reps[i] == reps[i - 1]]
    assert twice_in_a_row == [], f"the same rep picked twice in a row at {twice_in_a_row}: {reps}"
    assert Counter(reps) == {rep: PER_INSTANCE for rep in members}


def test_one_inquiry_sent_to_two_mailboxes_admitted_by_two_instances_at_once_is_forwarded_once(database_url):
    """The same mail to sales@ and info@, each mailbox worked by another instance: one copy is
    routed, the other is its duplicate, however the two admissions meet."""
    url = database_url
    config = replace(example_config(), database=url)
    _members, inquiry = TEAMS["europe"]
    raws = [inquiry(i) for i in range(PER_INSTANCE)]
    try:
        first, second = Router(config, open_database(url)), Router(config, open_database(url))
        go, errors = threading.Barrier(2), []
        threads = [threading.Thread(target=admit_each, args=(router, mailbox, raws, go, errors))
                   for router, mailbox in ((first, "sales"), (second, "info"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert not errors, errors
        with open_database(url)() as session:
            outcomes = Counter(session.scalars(select(MessageRow.outcome)))
            assignments = len(session.scalars(select(AssignmentRow.id)).all())
    finally:
        close_database(url)
    assert outcomes == {"routed": PER_INSTANCE, "duplicate": PER_INSTANCE}
    assert assignments == PER_INSTANCE


def test_two_instances_queueing_digests_at_once_queue_each_once(database_url):
    """Every instance runs the digest job at the same configured minute: each supervisor's
    digest is queued once, and neither job fails (before, the second died on the primary key
    of digests_sent, a traceback in the journal every morning)."""
    url = database_url
    config = replace(example_config(), database=url)
    monday = datetime(2026, 12, 7, 8, 31, tzinfo=ZoneInfo("Asia/Shanghai"))  # daily and weekly due
    go, queued, errors = threading.Barrier(2), [], []

    def instance() -> None:
        sessions = open_database(url)
        go.wait(60)
        try:
            with sessions.begin() as session:
                queued.append(queue_due_digests(session, config, monday))
        except BaseException as exc:  # noqa: BLE001 (reported by the test, not lost in the thread)
            errors.append(exc)

    try:
        threads = [threading.Thread(target=instance) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        with open_database(url)() as session:
            digests = session.scalars(select(DigestSentRow.kind)).all()
            notices = session.scalars(select(OutboxRow.recipient)).all()
    finally:
        close_database(url)
    assert not errors, errors
    assert sorted(digests) == ["daily", "weekly"]  # wang supervises both teams
    assert notices == [config.reps["wang"].email] * 2
    assert sorted(queued) == [0, 2]
