"""Report figures against the hand-computed fixture (see tests/test_reports_fixture.py).

Percentiles are nearest-rank: value at 1-based rank ceil(p * n / 100) of the sorted times.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.reports.figures import (GroupFigures, Period, Report, ReplyTimes, Scope,
                                        bucket_starts, compute_report)
from tests.test_reports_fixture import NOW, PERIOD, make_db, report_config


@pytest.fixture
def report(sessions: sessionmaker[Session], tmp_path: Path) -> Report:
    factory, _ = make_db(sessions)
    config = report_config()
    with factory() as session:
        return compute_report(session, Scope(PERIOD), NOW, tz=config.timezone,
                              members={t.id: t.members for t in config.teams.values()})


def by_key(groups: tuple[GroupFigures, ...]) -> dict[str, GroupFigures]:
    return {g.key: g for g in groups}


def test_zhang_figures(report: Report) -> None:
    z = by_key(report.by_rep)["zhang"]
    # wall 60 240 600 2000 4000: median rank ceil(2.5)=3, p90 rank ceil(4.5)=5, mean 6900/5
    assert z.wall == ReplyTimes(median=600, mean=1380, p90=4000)
    # business 60 240 300 1000 3700
    assert z.business == ReplyTimes(median=300, mean=1060, p90=3700)
    assert (z.assigned, z.replied) == (7, 5)
    # thresholds on business time: <=300: 60 240 300; >300: 1000 3700; >1800 and >3600: 3700
    assert (z.within_5m, z.over_5m, z.over_30m, z.over_60m) == (3, 2, 1, 1)
    assert z.never_answered == 2  # z6 ended (reassigned), z7 open past due
    assert z.reassigned_away == 1
    assert z.collisions == 2
    assert z.met_due == 3  # due 15 min after assignment: 60, 240, 600 s (wall)
    assert z.share == pytest.approx(7 / 21)


def test_li_even_count_median_is_lower_middle(report: Report) -> None:
    li = by_key(report.by_rep)["li"]
    # 10 replies: median rank ceil(5)=5 -> 500 (not 600, the mean of the middle two); p90 rank 9
    assert li.wall == ReplyTimes(median=500, mean=963, p90=1000)
    assert li.business == ReplyTimes(median=500, mean=663, p90=1000)
    assert (li.within_5m, li.over_5m, li.over_30m, li.over_60m) == (3, 7, 1, 0)
    assert li.never_answered == 0  # l11 is open but not yet due; l0 is outside the period
    assert (li.assigned, li.replied, li.collisions) == (11, 10, 0)


def test_chen_figures(report: Report) -> None:
    c = by_key(report.by_rep)["chen"]
    assert c.wall == ReplyTimes(median=120, mean=1560, p90=3000)  # n=2: ranks 1 and 2
    assert (c.never_answered, c.reassigned_away, c.collisions) == (1, 0, 1)  # one collision is before the period


def test_team_figures(report: Report) -> None:
    eu = by_key(report.by_team)["europe"]
    # 15 wall times merged: rank 8 -> 600, rank 14 -> 4000, mean 16530/15
    assert eu.wall == ReplyTimes(median=600, mean=1102, p90=4000)
    assert eu.business.median == 500 and eu.business.p90 == 2000
    assert eu.business.mean == pytest.approx(11930 / 15)
    assert (eu.assigned, eu.never_answered, eu.reassigned_away, eu.collisions) == (18, 2, 1, None)
    assert eu.share == pytest.approx(18 / 21)
    assert report.total == 21


def test_rule_country_language(report: Report) -> None:
    assert {k: g.assigned for k, g in by_key(report.by_rule).items()} == {
        "germany": 8, "europe": 11, "americas": 2}
    assert {k: g.assigned for k, g in by_key(report.by_country).items()} == {
        "DE": 7, "AT": 1, "FR": 11, "US": 2}
    assert by_key(report.by_language)["en"].wall.median == 120  # z5 4000, c1 120, c2 none


def test_products_count_each_named_product_and_escape_like(report: Report) -> None:
    products = by_key(report.by_product)
    assert {k: g.assigned for k, g in products.items()} == {
        "valves": 2, "pumps": 1, "pipe_fittings": 1, "pipexfittings": 1}  # '_' is not a wildcard
    assert products["valves"].wall == ReplyTimes(median=60, mean=150, p90=240)


def test_fairness_counts_members_without_assignments(report: Report) -> None:
    rows = {(f.team, f.rep): f for f in report.fairness}
    assert rows["europe", "zhang"].share_in_team == pytest.approx(7 / 18)
    assert rows["europe", "zhang"].ratio == pytest.approx(14 / 18)
    assert rows["europe", "li"].ratio == pytest.approx(22 / 18)
    assert rows["americas", "chen"].ratio == 2.0
    assert rows["americas", "wang"].assigned == 0 and rows["americas", "wang"].ratio == 0.0


def test_backlog_is_everything_waiting_for_a_person(report: Report) -> None:
    # two unassigned Unrecognized + c2, whose forward was undeliverable (see backlog.py)
    assert report.backlog.count == 3
    # c2 arrived 2026-11-07 02:00: 58 h before now = 58 * 3600 = 208800 s
    assert report.backlog.oldest_age_seconds == 208800


def test_series_and_histogram(report: Report) -> None:
    # Days start at midnight Asia/Shanghai: 01:00 UTC on 11-06 is 09:00 local on 11-06
    assert sum(report.series.volume_by_team["europe"]) == 18
    assert report.series.volume_by_team["americas"] == (0, 0, 0, 1, 0, 2, 0, 0)
    assert sum(report.series.met_due) == 12 and sum(report.series.with_due) == 21
    assert report.histogram.counts["zhang"] == (3, 0, 1, 0, 1, 0, 0)


def test_filters(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    factory, _ = make_db(sessions)
    with factory() as session:
        team = compute_report(session, Scope(PERIOD, teams=("americas",)), NOW)
        rep = compute_report(session, Scope(PERIOD, reps=("zhang",)), NOW)
    assert [g.key for g in team.by_rep] == ["chen"] and team.total == 3
    assert [g.key for g in rep.by_rep] == ["zhang"]
    assert rep.by_rep[0].share == pytest.approx(7 / 21)  # the rep filter keeps the denominator
    assert {f.rep for f in rep.fairness} == {"zhang"}


def test_bucket_starts_follow_local_days() -> None:
    starts = bucket_starts(PERIOD, report_config().timezone)
    assert len(starts) == 8 and starts[0].hour == 16  # 00:00 in Shanghai is 16:00 UTC
    long = Period(PERIOD.since, PERIOD.since.replace(year=2030))
    assert len(bucket_starts(long, report_config().timezone)) <= 300
