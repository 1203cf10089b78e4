"""Pure first-start decisions (issue 12 item 1): what a never-seen folder's mail becomes."""
from datetime import date, datetime, timedelta, timezone

import pytest

from mailrouter.intake.firststart import (DEFAULT_BACKFILL, Found, parse_backfill,
                                          plan_first_start)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
SEEN, ANSWERED = frozenset({"\\Seen"}), frozenset({"\\Answered"})
UNREAD = frozenset()


def _found(uid: int, flags: frozenset[str], age: timedelta | None) -> Found:
    return Found(uid=uid, flags=flags, internal_date=None if age is None else NOW - age)


def test_default_routes_unread_of_last_24h_and_adopts_the_rest():
    old = [_found(u, f, timedelta(days=30)) for u, f in
           zip(range(1, 301), [SEEN, ANSWERED, UNREAD] * 100)]
    recent = [_found(u, UNREAD, timedelta(hours=1)) for u in range(301, 306)]
    recent_read = [_found(306, SEEN, timedelta(hours=1)), _found(307, ANSWERED, timedelta(hours=1))]
    plan = plan_first_start(old + recent + recent_read, parse_backfill(DEFAULT_BACKFILL), NOW)
    assert plan.route == (301, 302, 303, 304, 305)
    assert len(plan.adopt) == 302 and set(plan.adopt).isdisjoint(plan.route)
    line = plan.summary("sales", parse_backfill(DEFAULT_BACKFILL))
    assert line == "sales: first start: adopted 302, routing 5 unread from the last 24h"


def test_zero_adopts_everything():
    plan = plan_first_start([_found(1, UNREAD, timedelta(minutes=1))], parse_backfill("0"), NOW)
    assert plan == plan.__class__(adopt=(1,), route=())


def test_date_backfill_counts_from_start_of_day_utc():
    found = [_found(1, UNREAD, NOW - datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)),
             _found(2, UNREAD, NOW - datetime(2026, 11, 30, 23, 59, tzinfo=timezone.utc))]
    plan = plan_first_start(found, parse_backfill("2026-12-01"), NOW)
    assert plan.route == (1,) and plan.adopt == (2,)


def test_message_without_internal_date_is_adopted_not_routed():
    plan = plan_first_start([_found(7, UNREAD, None)], parse_backfill("3d"), NOW)
    assert plan.adopt == (7,) and plan.route == ()


def test_flags_compare_case_insensitively():
    plan = plan_first_start([Found(1, frozenset({"\\SEEN"}), NOW)], parse_backfill("12h"), NOW)
    assert plan.adopt == (1,)


@pytest.mark.parametrize("text,window,since", [
    ("3d", timedelta(days=3), None), ("12h", timedelta(hours=12), None),
    ("2026-12-01", None, date(2026, 12, 1)), ("0", None, None), ("0h", None, None)])
def test_parse_backfill_accepts(text, window, since):
    b = parse_backfill(text)
    assert (b.window, b.since) == (window, since)


@pytest.mark.parametrize("text", ["24", "yesterday", "2026-13-01", "", 3])
def test_parse_backfill_rejects(text):
    with pytest.raises(ValueError):
        parse_backfill(text)


def test_after_uidvalidity_change_history_is_adopted_again():
    from mailrouter.intake.firststart import adopt_history
    found = [_found(1, UNREAD, timedelta(days=3)), _found(2, UNREAD, timedelta(minutes=5)),
             _found(3, SEEN, None)]
    assert adopt_history(found, NOW - timedelta(hours=1)) == (1, 3)
