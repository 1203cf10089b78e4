"""dry-run against the real test bed: decisions replayed, changes found, the server untouched."""
from __future__ import annotations

import io
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from mailrouter.config.load import Config, load_config
from mailrouter.runtime.daemon import Daemon
from mailrouter.commands.demo import deliver_samples, wait_until_filed, write_testbed_config
from mailrouter.commands.dryrun import (DryRunResult, Recorded, dry_run, format_dry_run, format_result,
                               parse_since)
from mailrouter.testing.samples import SALES, demo_samples
from mailrouter.testing.testbed import TestBed

ROOT = Path(__file__).resolve().parent.parent
OVERRIDE = """
[[rule]]
name = "backtest-de-to-li"
country = ["DE"]
rep = "li"
"""


def server_state(bed: TestBed, user: str) -> dict[str, list[tuple[int, frozenset[bytes]]]]:
    """Every folder with each message's UID and flags, read without changing anything."""
    client = bed.imap(user)
    try:
        state = {}
        for _flags, _sep, name in client.list_folders():
            client.select_folder(name, readonly=True)
            flags = client.get_flags(client.search(["ALL"]) or [])
            state[name] = sorted((uid, frozenset(f) - {b"\\Recent"}) for uid, f in flags.items())
        return state
    finally:
        client.logout()


def routed_bed(bed: TestBed, workdir: Path, rules_dir: Path | None = None) -> Config:
    """The demo samples routed by the real daemon, as history for a backtest."""
    extra = {"rules_dir": str(rules_dir)} if rules_dir else {}
    config = load_config(write_testbed_config(ROOT / "config.toml", bed, workdir, **extra))
    copies = deliver_samples(bed, demo_samples())
    daemon = Daemon(config)
    daemon.start()
    try:
        assert wait_until_filed(config, copies, timeout=120)
    finally:
        daemon.stop()
    return config


def modified_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules-new"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "20-backtest.toml").write_text(OVERRIDE, encoding="utf-8")  # before 50-routing
    return rules


@pytest.mark.integration
def test_backtest_reports_changes_and_touches_nothing(bed: TestBed, tmp_path: Path) -> None:
    config = routed_bed(bed, tmp_path)
    before = server_state(bed, SALES)

    same = list(dry_run(config, "sales", progress=False))
    assert same and all(r.old is not None for r in same)
    assert [format_result(r) for r in same if r.changed] == []
    # every message over the large-message threshold: read in chunks, decided from the scan
    scanned = dry_run(replace(config, large_message_bytes=1), "sales")
    assert sorted(scanned, key=lambda r: (r.folder, r.uid)) == sorted(same, key=lambda r: (r.folder, r.uid))

    new_config = load_config(write_testbed_config(ROOT / "config.toml", bed, tmp_path,
                                                   rules_dir=str(modified_rules(tmp_path))))
    out = io.StringIO()
    totals = format_dry_run(dry_run(new_config, "sales", progress=True), out)
    results = list(dry_run(new_config, "sales"))
    changed = [r for r in results if r.changed]
    assert changed, out.getvalue()
    assert all(r.rule == "backtest-de-to-li" and r.rep == "li" for r in changed)
    assert all(r.old is not None and r.old.rep == "zhang" for r in changed)
    assert {r.sender for r in changed} >= {"k.becker@becker-elektronik.de", "h.mueller@mueller-antriebe.de"}
    assert not any(r.sender.endswith(".at") for r in changed)  # Austria keeps its rule
    # a known customer goes to its owner before any rule is asked: a rule change cannot move it
    assert all(not r.changed for r in results if r.by_registry)
    assert totals.changed == len(changed) and totals.examined == len(results)
    assert out.getvalue().splitlines()[-1].startswith(f"{len(changed)} of {len(results)} would change: "
                                                      f"{len(changed)} zhang -> li")

    assert server_state(bed, SALES) == before


@pytest.mark.integration
def test_single_folder_and_since(bed: TestBed, tmp_path: Path) -> None:
    config = load_config(write_testbed_config(ROOT / "config.toml", bed, tmp_path))
    sample = demo_samples()[0]
    bed.deliver(SALES, sample.raw, mail_from=sample.envelope_from)
    before = server_state(bed, SALES)
    [result] = dry_run(config, "sales", "INBOX", since=date(2000, 1, 1))
    assert result.old is None and result.outcome == "routed" and result.rep == "zhang"
    assert list(dry_run(config, "sales", "INBOX", since=date(2999, 1, 1))) == []
    with pytest.raises(Exception, match="no folder 'Nowhere'"):
        list(dry_run(config, "sales", "Nowhere"))
    assert server_state(bed, SALES) == before  # still unseen, still in INBOX


def result(outcome: str, rep: str | None, old: Recorded | None, team: str | None = None) -> DryRunResult:
    return DryRunResult("INBOX", 7, "<m@x>", "a@b.de", "s", outcome, "r", rep, team, "why", old)


def test_team_member_is_not_a_change() -> None:
    old = Recorded("routed", "r", "li", "europe")
    assert not result("routed", "wang", old, team="europe").changed
    assert result("routed", "li", old).changed  # from the team to a fixed rep


def test_report_lines_and_summary() -> None:
    out = io.StringIO()
    totals = format_dry_run([result("routed", "li", Recorded("routed", "r", "zhang", None)),
                             result("routed", "li", Recorded("routed", "r", "li", None)),
                             result("unrecognized", None, None)], out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "CHANGED  INBOX#7 <m@x> from a@b.de: routed zhang (r) -> routed li (r)"
    assert lines[1].startswith("same ") and lines[2].startswith("new ")
    assert lines[-1] == "1 of 3 would change: 1 zhang -> li (1 not in the database)"
    assert (totals.examined, totals.changed, totals.unseen) == (3, 1, 1)


@pytest.mark.parametrize("text, expected", [("30d", date(2026, 10, 3)), ("2w", date(2026, 10, 19)),
                                            ("2026-01-31", date(2026, 1, 31))])
def test_parse_since(text: str, expected: date) -> None:
    assert parse_since(text, date(2026, 11, 2)) == expected


def test_parse_since_rejects() -> None:
    with pytest.raises(ValueError, match="--since takes"):
        parse_since("last week", date(2026, 11, 2))


def test_recorded_decision_is_the_rules_first_choice_not_the_ladders(sessions) -> None:
    from datetime import datetime, timezone

    from mailrouter.commands.dryrun import recorded_decision
    from mailrouter.store import FILED, AssignmentRow, MessageRow

    at = datetime(2026, 11, 17, 2, 0, tzinfo=timezone.utc)
    with sessions.begin() as s:
        # as the sweep leaves it: the message row follows its new owner
        row = MessageRow(mailbox="sales", uidvalidity=1, uid=1, raw_sha256="a" * 64, content_key="k" * 64,
                         state=FILED, outcome="routed", rule="r", rep="zhang", folder="Routed/zhang",
                         received_at=at, decided_at=at)
        s.add(row)
        s.flush()
        first = AssignmentRow(message=row.id, rep="li", customer="c@x", assigned_at=at, how="rule",
                              ended_at=at, end_reason="reassigned")
        s.add(first)
        s.flush()
        s.add(AssignmentRow(message=row.id, rep="zhang", customer="c@x", assigned_at=at, how="reassign",
                            reassigned_from=first.id))
    old = recorded_decision(sessions, "k" * 64)
    assert (old.rep, old.how, old.since) == ("li", "rule", "reassigned to zhang")
    assert not result("routed", "li", old).changed
    assert format_result(result("routed", "li", old)).endswith("routed li (r); since: reassigned to zhang")


def test_manual_assignments_are_listed_apart_and_never_a_change() -> None:
    out = io.StringIO()
    totals = format_dry_run([result("unrecognized", None, Recorded("routed", None, "li", None, "manual"))], out)
    assert out.getvalue().splitlines()[0].startswith("manual   INBOX#7 <m@x> from a@b.de: assigned by hand to li")
    assert (totals.changed, totals.manual) == (0, 1)
    assert out.getvalue().splitlines()[-1] == "0 of 1 would change (1 assigned by hand, not compared)"


def test_report_lines_and_summary_in_chinese() -> None:
    out = io.StringIO()
    format_dry_run([result("routed", "li", Recorded("routed", "r", "zhang", None)),
                    result("unrecognized", None, Recorded("routed", None, "li", None, "manual"))], out,
                   language="zh")
    lines = out.getvalue().splitlines()
    assert lines[0] == "改变     INBOX#7 <m@x> 发件人 a@b.de: routed zhang (r) -> routed li (r)"
    assert lines[1].startswith("手动     INBOX#7 <m@x> 发件人 a@b.de: 手动分配给 li")
    assert lines[-1] == "2 封中 1 封会改变：1 zhang -> li（1 封为手动分配，不比较）"


def test_the_ladder_setting_an_inquiry_aside_is_what_happened_since_the_first_decision() -> None:
    from mailrouter.commands.dryrun import since_first
    # the ladder could not parse the original again within the bounds: Quarantine, ladder ended
    assert since_first([("rule", "zhang", "quarantined")]) == "quarantined"
    assert since_first([("rule", "zhang", "reassigned"), ("reassign", "li", "pooled")]) == "reassigned to li, pooled"
