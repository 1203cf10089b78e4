"""Issue 12 item 1: `dry-run --first-start` shows what a first start would adopt and route,
changes nothing, and agrees with what the daemon then does (real Dovecot + SMTP)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from mailrouter.commands import cli
from mailrouter.runtime.daemon import Daemon
from mailrouter.store import ADOPTED, FILED, MessageRow, open_database
from mailrouter.testing.samples import bulk_samples
from mailrouter.testing.testbed import TestBed
from tests.mailcheck import configure, count_rows, forwards_by_original, parsed, wait_for

pytestmark = pytest.mark.integration

SALES = "sales@example.com"


def _inbox_flags(bed: TestBed) -> list[tuple[int, frozenset]]:
    client = bed.imap(SALES)
    try:
        client.select_folder("INBOX", readonly=True)
        return sorted((uid, frozenset(f) - {b"\\Recent"}) for uid, f in client.get_flags(client.search(["ALL"])).items())
    finally:
        client.logout()


def test_first_start_preview_matches_the_daemon_and_touches_nothing(bed: TestBed, tmp_path, capsys):
    config = configure(bed, tmp_path)
    now = datetime.now(timezone.utc)
    samples = bulk_samples(23)
    old, recent = samples[:20], samples[20:]
    bed.append(SALES, [(s.raw, ("\\Seen",), now - timedelta(days=90)) for s in old]
               + [(s.raw, (), now - timedelta(hours=1)) for s in recent])
    before = _inbox_flags(bed)

    assert cli.main(["--config", str(config.path), "dry-run", "--mailbox", "sales", "--first-start"]) == 0
    out = capsys.readouterr().out
    assert "sales INBOX: first start would adopt 20 (left where they are, never forwarded) and route 3" in out
    route_lines = [line for line in out.splitlines() if line.startswith("  route")]
    assert len(route_lines) == 3
    for sample in recent:
        assert any(str(parsed(sample.raw)["Message-ID"]) in line for line in route_lines)
    # read-only: flags as appended, no row written, nothing forwarded
    assert _inbox_flags(bed) == before
    assert count_rows(config, MessageRow.id > 0) == 0
    assert forwards_by_original(bed, config) == {}

    daemon = Daemon(config)
    daemon.start()
    try:
        wait_for(lambda: count_rows(config, MessageRow.state == FILED) == 3, "the 3 recent filed", 90)
    finally:
        daemon.stop()
    assert count_rows(config, MessageRow.state == ADOPTED) == 20
    forwarded = forwards_by_original(bed, config)
    assert set(forwarded) == {str(parsed(s.raw)["Message-ID"]) for s in recent}
    with open_database(config.database)() as session:  # the preview named the daemon's rule and target
        decided = {row.message_id: row for row in session.scalars(select(MessageRow).where(MessageRow.state == FILED))}
    for line in route_lines:
        row = decided[next(m for m in forwarded if m in line)]
        assert f"({row.rule})" in line and (f"team {row.team}" in line if row.team else f" {row.rep} " in line), line

    assert cli.main(["--config", str(config.path), "dry-run", "--mailbox", "sales", "--first-start"]) == 0
    assert "sales INBOX: watched since" in capsys.readouterr().out


def test_first_start_preview_follows_daemon_language_unless_told(bed: TestBed, tmp_path, capsys):
    """Issue 15 item 6: `dry-run --first-start` speaks daemon.language like the rest of dry-run."""
    config = configure(bed, tmp_path, language="zh")
    now = datetime.now(timezone.utc)
    samples = bulk_samples(3)
    bed.append(SALES, [(samples[0].raw, ("\\Seen",), now - timedelta(days=90))]
               + [(s.raw, (), now - timedelta(hours=1)) for s in samples[1:]])
    assert cli.main(["--config", str(config.path), "dry-run", "--mailbox", "sales", "--first-start"]) == 0
    out = capsys.readouterr().out
    assert "sales INBOX：首次启动将接管 1 封（原地不动，不转发），分配 2 封（回补 最近 24h）" in out
    assert len([line for line in out.splitlines() if line.startswith("  分配     INBOX#")]) == 2
    assert cli.main(["--config", str(config.path), "dry-run", "--mailbox", "sales", "--first-start",
                     "--language", "en"]) == 0
    assert "sales INBOX: first start would adopt 1 (left where they are, never forwarded) and route 2 " \
           "(backfill the last 24h)" in capsys.readouterr().out
