"""Issue 17 "instances spread mailboxes": on PostgreSQL the instances converge to a fair share of
the leases (ceil(wanted / live)) instead of the first one keeping them all. The decisions are
pure functions over a census; the census itself is read from a real PostgreSQL's pg_locks."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from mailrouter.lease import (AT_SHARE_TRY, HAND_BACK_AFTER, LEASE_POLL, Census, Instance, PostgresLease,
                              eager, fair_share, hand_over_due)
from mailrouter.store import LeaseRow, open_database


def census(*held: int) -> Census:
    """Instances 1..n holding `held` leases each."""
    return Census(frozenset(range(1, len(held) + 1)), {i: n for i, n in enumerate(held, 1) if n})


@pytest.mark.parametrize("wanted, live, share", [(10, 3, (3, 4)), (10, 2, (5, 5)), (10, 1, (10, 10)),
                                                 (2, 3, (0, 1)), (0, 2, (0, 0))])
def test_the_fair_share_is_floor_to_ceil_of_wanted_over_live(wanted, live, share) -> None:
    assert fair_share(wanted, live) == share


@pytest.mark.parametrize("held, me, due", [
    ((10, 0, 0), 1, True),   # all on the first: above the share of 4
    ((5, 5, 0), 1, True),    # above 4
    ((4, 4, 2), 1, True),    # at the share, but two more than the fewest: 4/3/3 is fairer
    ((4, 3, 3), 1, False),   # fair
    ((3, 3, 4), 3, False),
    ((10,), 1, False),       # alone
])
def test_an_instance_hands_over_above_its_share_or_two_above_the_fewest(held, me, due) -> None:
    assert hand_over_due(census(*held), me, wanted=10) is due


def test_an_instance_above_its_share_sheds_no_more_than_its_surplus_at_once() -> None:
    assert hand_over_due(census(9, 0, 0), 1, wanted=10)  # 1 free, 5 too many: go on
    assert not hand_over_due(census(5, 0, 0), 1, wanted=10)  # 5 free already: enough


def test_at_the_share_nothing_is_handed_over_while_a_lease_is_free() -> None:
    """One moving at a time: until the lease handed over is taken, nobody hands over another
    (or two instances at 4 would both hand one to the third at 1)."""
    assert not hand_over_due(census(4, 4, 1), 1, wanted=10)


@pytest.mark.parametrize("held, me, is_eager", [
    ((3, 3, 2), 3, True),    # the fewest
    ((3, 3, 2), 1, False),   # at the floor share, not the fewest: lets instance 3 take it first
    ((4, 3), 2, True),       # below 5 after an instance died
    ((4, 3), 1, True),
    ((9,), 1, True),         # alone
])
def test_the_instances_with_fewest_try_free_leases_at_every_poll(held, me, is_eager) -> None:
    assert eager(census(*held), me, wanted=10) is is_eager


def test_some_live_instance_is_always_eager_while_a_lease_is_free() -> None:
    """So a free lease is taken within a poll, not left for the at-share instances' slower tries."""
    for held in [(3, 3, 3), (4, 4, 1), (5, 4, 0), (1, 1, 1), (0, 0, 0)]:
        assert any(eager(census(*held), me, wanted=10) for me in range(1, 4)), held


def test_three_instances_on_postgresql_converge_to_4_3_3_and_a_handed_lease_stays_away(postgres) -> None:
    """Three instances (distinct instance locks, as three processes would hold) on one
    PostgreSQL, each wanting the same 10 mailboxes; the first takes them all. Each poll every
    loop that holds its lease checks it at a clean point, and every waiting one tries."""
    url = postgres.new_database()
    sessions = open_database(url)
    clock = [datetime(2026, 12, 4, 22, 0, tzinfo=timezone.utc)]
    names = [f"mailbox box{i}" for i in range(10)]
    instances = [Instance(sessions, url) for _ in range(3)]
    leases = [[PostgresLease(name, sessions, url, lambda: clock[0], inst) for name in names] for inst in instances]
    try:
        assert all(lease.acquire() for lease in leases[0])
        holdings = [10, 0, 0]
        handed: list[str] = []
        for poll in range(40):  # 40 polls of 5 s: within the first ten the share is reached
            if poll == 20:
                assert sorted(holdings) == [3, 3, 4], holdings
                settled = len(handed)
            clock[0] += timedelta(seconds=LEASE_POLL)
            for own in leases:
                for lease in own:
                    if lease._since is not None:
                        if not lease.held(clean=True):
                            handed.append(lease.name)
                            # not taken back while the hand-back pause lasts
                            assert not lease.acquire()
                    else:
                        lease.acquire()
            holdings = [sum(lease._since is not None for lease in own) for own in leases]
            assert sum(holdings) <= 10
        assert sorted(holdings) == [3, 3, 4], holdings
        assert len(handed) == settled <= 8, handed  # then it stays: no lease goes back and forth
        with sessions() as session:  # what `status` shows
            assert len(session.scalars(select(LeaseRow)).all()) == 10
    finally:
        for own in leases:
            for lease in own:
                lease.release()
        for instance in instances:
            instance.close()


def test_a_lease_handed_over_is_taken_by_an_instance_below_its_share_within_a_poll(postgres) -> None:
    url = postgres.new_database()
    sessions = open_database(url)
    clock = [datetime(2026, 12, 4, 22, 0, tzinfo=timezone.utc)]
    first, second = Instance(sessions, url), Instance(sessions, url)
    mine = [PostgresLease(f"mailbox box{i}", sessions, url, lambda: clock[0], first) for i in range(2)]
    theirs = [PostgresLease(f"mailbox box{i}", sessions, url, lambda: clock[0], second) for i in range(2)]
    try:
        assert all(lease.acquire() for lease in mine)
        assert not theirs[0].acquire() and not theirs[1].acquire()  # census: the second exists now
        clock[0] += timedelta(seconds=LEASE_POLL)
        assert [lease.held(clean=True) for lease in mine].count(False) == 1  # one of two: share 1
        gone = next(i for i, lease in enumerate(mine) if lease._since is None)
        assert theirs[gone].acquire()
        # the first, now at its share, does not take it back even once the pause is over
        clock[0] += timedelta(seconds=HAND_BACK_AFTER + AT_SHARE_TRY)
        assert mine[1 - gone].held(clean=True) and not mine[gone].acquire()
        # but a lease nobody holds is taken by it, the second being gone (failover)
        theirs[gone].release()
        second.close()
        clock[0] += timedelta(seconds=LEASE_POLL)
        assert mine[gone].acquire()
    finally:
        for lease in mine + theirs:
            lease.release()
        first.close()
        second.close()


def test_mailboxes_and_reply_sources_are_spread_each_on_their_own(postgres) -> None:
    """Reply watchers hold leases too, under the same rules; a share of each kind, so one
    instance never ends with all the mailboxes and the other with all the reply sources."""
    url = postgres.new_database()
    sessions = open_database(url)
    clock = [datetime(2026, 12, 4, 22, 0, tzinfo=timezone.utc)]
    names = ["mailbox sales", "mailbox info", "reply_source zhang", "reply_source li"]
    first, second = Instance(sessions, url), Instance(sessions, url)
    mine = [PostgresLease(name, sessions, url, lambda: clock[0], first) for name in names]
    theirs = [PostgresLease(name, sessions, url, lambda: clock[0], second) for name in names]
    try:
        assert all(lease.acquire() for lease in mine)
        assert not any(lease.acquire() for lease in theirs)
        for _ in range(6):
            clock[0] += timedelta(seconds=LEASE_POLL)
            for lease in mine:
                if lease._since is not None:
                    lease.held(clean=True)
            for lease in theirs:
                lease.acquire()
        assert [lease.name for lease in theirs if lease._since is not None] in (
            [a, b] for a in names[:2] for b in names[2:])
        assert sum(lease._since is not None for lease in mine) == 2
    finally:
        for lease in mine + theirs:
            lease.release()
        first.close()
        second.close()
