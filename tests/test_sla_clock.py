"""Where the first-reply clock starts (sla/clock.py): the server's arrival, bounded."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from mailrouter.sla.clock import arrival_time, reply_clock_start

SEEN = datetime(2026, 11, 17, 2, 16, tzinfo=timezone.utc)
LOOKED = SEEN - timedelta(hours=1)  # the daemon's last look: it was stopped since


def test_arrival_during_downtime_is_the_servers_date() -> None:
    assert arrival_time(SEEN - timedelta(minutes=6), SEEN, LOOKED) == SEEN - timedelta(minutes=6)


def test_arrival_is_never_after_first_seen_nor_before_the_last_look() -> None:
    assert arrival_time(SEEN + timedelta(minutes=3), SEEN, LOOKED) == SEEN  # server clock ahead
    assert arrival_time(SEEN - timedelta(days=30), SEEN, LOOKED) == LOOKED  # moved in from an archive


def test_without_a_date_or_an_earlier_look_it_is_first_seen() -> None:
    assert arrival_time(None, SEEN, LOOKED) == SEEN
    assert arrival_time(SEEN - timedelta(days=2), SEEN, None) == SEEN  # a first start's backfill


def test_first_assignment_counts_from_arrival_later_ones_from_their_start() -> None:
    arrived = SEEN - timedelta(minutes=6)
    assert reply_clock_start("rule", None, SEEN, arrived) == arrived
    assert reply_clock_start("registry", None, SEEN, arrived) == arrived
    assert reply_clock_start("manual", None, SEEN, arrived) == SEEN
    assert reply_clock_start("reassign", 7, SEEN, arrived) == SEEN
