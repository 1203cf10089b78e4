"""The clock after downtime and reassignment, on the real test bed (issue 15, done-when (c), (g))."""
from __future__ import annotations

import io
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from mailrouter.commands.demo import deliver_samples
from mailrouter.store import OutboxRow, SlaStepRow, open_database
from tests.mailcheck import MovableClock, parsed, wait_for
from tests.test_sla_e2e import (  # noqa: F401 (fixtures)
    TUESDAY_10, assignments, buyer_bed, french_inquiry, running, sla_config,
)

pytestmark = pytest.mark.integration


def notices_for(config, assignment_ids) -> list[OutboxRow]:
    with open_database(config.database)() as session:
        return list(session.scalars(select(OutboxRow).where(OutboxRow.kind == "notice")))


def step_rows(config) -> list[tuple[int, str, str]]:
    with open_database(config.database)() as session:
        return [(r.assignment, r.step, r.detail) for r in
                session.scalars(select(SlaStepRow).order_by(SlaStepRow.id))]


def test_after_an_hour_stopped_each_overdue_assignment_gets_one_notice_threaded_on_its_forward(
        buyer_bed, tmp_path, running):
    config = sla_config(buyer_bed, tmp_path)
    clock = MovableClock(TUESDAY_10)
    deliver_samples(buyer_bed, [french_inquiry(401), french_inquiry(402)])
    daemon = running(config, clock)
    firsts = wait_for(lambda: len(assignments(config)) == 2 and assignments(config), "two assignments")
    for a in firsts:
        wait_for(lambda: buyer_bed.fetch_all(config.reps[a.rep].email), "the forward")
    daemon.stop()

    clock.now = TUESDAY_10 + timedelta(hours=1)  # remind, escalate and reassign all fell due
    running(config, clock)
    wait_for(lambda: len(assignments(config)) == 4, "the reassignments")
    time.sleep(1.0)  # several sweeps: nothing more may go out
    supervisor = config.teams["europe"].supervisor
    assert buyer_bed.fetch_all(config.reps[supervisor].email) == []  # the skipped escalation
    for a in firsts:
        inbox = [parsed(raw) for raw in buyer_bed.fetch_all(config.reps[a.rep].email)]
        notices = [m for m in inbox if m["In-Reply-To"] == a.forward_message_id]
        assert len(notices) == 1, [str(m["Subject"]) for m in inbox]
        assert notices[0]["References"] == a.forward_message_id
        body = notices[0].get_body(("plain",)).get_content()
        assert "Demande de prix LED" in body and "marie@lumiere-lyon.fr" in body
    rows = step_rows(config)
    for a in firsts:
        mine = [(step, detail) for assignment, step, detail in rows if assignment == a.id]
        assert [step for step, _ in mine] == ["remind@5m", "escalate@15m", "reassign@30m"]
        assert [detail.startswith("skipped") for _, detail in mine] == [True, True, False]


def test_dry_run_with_unchanged_rules_shows_manual_and_ladder_apart_and_no_change(
        buyer_bed, tmp_path, running, capsys):
    from mailrouter.commands.cli import main
    from mailrouter.commands.dryrun import dry_run, format_dry_run
    from mailrouter.testing.samples import ENGLISH, Sample, compose
    from tests.test_manager_e2e import move

    config = sla_config(buyer_bed, tmp_path)
    clock = MovableClock(TUESDAY_10)
    stray = Sample("stray", ("sales@example.com",),
                   compose("Sam Lee <sam@global-imports.com>", "Catalogue request", ENGLISH, n=501), "unrecognized")
    deliver_samples(buyer_bed, [french_inquiry(), stray])
    daemon = running(config, clock)
    wait_for(lambda: assignments(config) and buyer_bed.fetch_all("sales@example.com", "Unrecognized"),
             "one routed, one unrecognized")
    daemon.stop()  # (a running daemon looks at Assign/ only when IDLE wakes it)
    move(buyer_bed, "sales@example.com", "Unrecognized", "Assign/li")  # the manager assigns it by hand
    daemon = running(config, clock)
    wait_for(lambda: len(assignments(config)) == 2, "the manual assignment")
    clock.now = TUESDAY_10 + timedelta(minutes=31)  # the ladder reassigns the routed one
    wait_for(lambda: any(a.how == "reassign" for a in assignments(config)), "a ladder reassignment")
    wait_for(lambda: not buyer_bed.fetch_all("sales@example.com", "INBOX"), "everything filed")
    daemon.stop()

    out = io.StringIO()
    totals = format_dry_run(dry_run(config, "sales"), out)
    assert totals.changed == 0, out.getvalue()
    assert (totals.manual, totals.ladder) == (1, 1), out.getvalue()
    lines = out.getvalue().splitlines()
    assert any(line.startswith("manual ") for line in lines)
    assert any(line.startswith("same ") and "since: reassigned to" in line for line in lines)
    assert main(["-c", str(config.path), "dry-run", "--mailbox", "sales", "--exit-code"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("0 of 2 would change")


def test_a_reassigned_inquiry_is_overdue_once_past_its_new_due_time(buyer_bed, tmp_path, running):
    from mailrouter.reports.overdue import overdue_now

    config = sla_config(buyer_bed, tmp_path)
    clock = MovableClock(TUESDAY_10)
    deliver_samples(buyer_bed, [french_inquiry()])
    running(config, clock)
    wait_for(lambda: assignments(config), "the assignment")
    clock.now = TUESDAY_10 + timedelta(minutes=31)
    _old, new = wait_for(lambda: len(assignments(config)) == 2 and assignments(config), "the reassignment")
    assert new.due_at == clock.now + timedelta(minutes=5)  # the ladder's first step, from the handover

    def overdue_ids(at):
        with open_database(config.database)() as session:
            return [o.assignment for o in overdue_now(session, at)]

    assert overdue_ids(clock.now + timedelta(minutes=4)) == []
    assert overdue_ids(clock.now + timedelta(minutes=6)) == [new.id]


def test_an_inquiry_delivered_while_stopped_is_measured_from_its_arrival(buyer_bed, tmp_path, running):
    from mailrouter.store import MessageRow
    from mailrouter.testing.samples import ENGLISH, Sample, compose
    from tests.test_sla_e2e import reply_as_client

    config = sla_config(buyer_bed, tmp_path)
    clock = MovableClock(TUESDAY_10)
    stray = Sample("stray", ("sales@example.com",),
                   compose("Sam Lee <sam@global-imports.com>", "Catalogue request", ENGLISH, n=501), "unrecognized")
    deliver_samples(buyer_bed, [stray])  # the daemon looks at the mailbox once, then stops
    daemon = running(config, clock)
    wait_for(lambda: buyer_bed.fetch_all("sales@example.com", "Unrecognized"), "the first look")
    daemon.stop()

    arrived = TUESDAY_10 + timedelta(minutes=10)
    client = buyer_bed.imap("sales@example.com")
    try:  # delivered during the outage: the server's INTERNALDATE says when
        client.append("INBOX", french_inquiry().raw, msg_time=arrived)
    finally:
        client.logout()
    clock.now = arrived + timedelta(seconds=383)
    running(config, clock)
    [a] = wait_for(lambda: assignments(config), "the assignment")
    rep = config.reps[a.rep]
    wait_for(lambda: buyer_bed.fetch_all(rep.email), "the forward")
    with open_database(config.database)() as session:
        assert session.get(MessageRow, a.message).received_at == arrived
    assert a.due_at == arrived + timedelta(minutes=5)  # in business hours: arrival + 5 min

    clock.now = arrived + timedelta(seconds=790)
    reply_as_client(buyer_bed, rep.email, a.forward_message_id, arrived + timedelta(seconds=780))
    [done] = wait_for(lambda: [x for x in assignments(config) if x.first_reply_at], "the reply")
    assert done.reply_seconds == 780  # what the buyer waited, not 397 s since the restart
