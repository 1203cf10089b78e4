"""The first-reply clock on the real mail test bed: replies seen in Sent, the ladder at moved times."""
from __future__ import annotations

import json
import smtplib
import threading
import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from mailrouter.config.load import Config, load_config
from mailrouter.runtime.daemon import Daemon
from mailrouter.commands.demo import deliver_samples, rep_reply_sources, write_testbed_config
from mailrouter.testing.samples import FRENCH, Sample, compose
from mailrouter.store import AssignmentRow, OutboxRow, SlaStepRow, open_database
from mailrouter.testing.testbed import TestBed
from tests.factories import ROOT
from tests.mailcheck import MovableClock, parsed, wait_for

pytestmark = pytest.mark.integration

BUYER = "marie@lumiere-lyon.fr"
# Tuesday 10:00 in Asia/Shanghai: inside the default business hours
TUESDAY_10 = datetime(2026, 11, 17, 2, 0, tzinfo=timezone.utc)



@pytest.fixture
def buyer_bed(make_bed) -> TestBed:
    """The bed also hosts the buyer's mailbox, so a rep's reply can really be sent."""
    return make_bed(extra_addresses=(BUYER,))


def sla_config(bed: TestBed, workdir: Path, daemon: dict | None = None, forward: dict | None = None,
               **sla) -> Config:
    overrides = {"sla": {"sweep_interval": 0.1, **sla}, "daemon": daemon or {},
                 "reply_source": rep_reply_sources(ROOT / "config.toml", bed, workdir / "password")}
    if forward:
        overrides["forward"] = forward
    return load_config(write_testbed_config(ROOT / "config.toml", bed, workdir, overrides))


def french_inquiry(n: int = 401) -> Sample:
    return Sample("French buyer", ("sales@example.com",),
                  compose(f"Marie Dubois <{BUYER}>", "Demande de prix LED", FRENCH, n=n), "routed")




def assignments(config: Config) -> list[AssignmentRow]:
    with open_database(config.database)() as session:
        return list(session.scalars(select(AssignmentRow).order_by(AssignmentRow.id)))


def steps(config: Config) -> list[str]:
    with open_database(config.database)() as session:
        return list(session.scalars(select(SlaStepRow.step).order_by(SlaStepRow.id)))


def inbox_subjects(bed: TestBed, user: str) -> list[str]:
    return [str(parsed(raw)["Subject"]) for raw in bed.fetch_all(user)]


def reply_as_client(bed: TestBed, rep_email: str, forward_id: str, when: datetime) -> None:
    """What a mail client does on Reply: send over SMTP and keep a copy in Sent."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = rep_email, BUYER, "Re: Demande de prix LED"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<reply.{int(when.timestamp())}@example.com>"
    msg["In-Reply-To"] = msg["References"] = forward_id
    msg.set_content("Bonjour Marie, voici notre offre.")
    with smtplib.SMTP(bed.host, bed.smtp_port) as smtp:
        smtp.send_message(msg)
    client = bed.imap(rep_email)
    try:
        client.append("Sent", msg.as_bytes(), flags=[b"\\Seen"])
    finally:
        client.logout()


@pytest.fixture
def running(buyer_bed, tmp_path):
    """Start a daemon on demand with a movable clock; stop whatever was started."""
    started: list[Daemon] = []

    def start(config: Config, clock: MovableClock) -> Daemon:
        daemon = Daemon(config, clock)
        daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def route_one(bed, config, clock, running) -> AssignmentRow:
    deliver_samples(bed, [french_inquiry()])
    daemon = running(config, clock)
    first = wait_for(lambda: assignments(config), "the assignment")[0]
    wait_for(lambda: bed.fetch_all(config.reps[first.rep].email), "the forward")
    return daemon, first


def test_a_reply_from_the_reps_mail_client_stops_the_clock(buyer_bed, tmp_path, running):
    config = sla_config(buyer_bed, tmp_path)
    clock = MovableClock(TUESDAY_10)
    _daemon, first = route_one(buyer_bed, config, clock, running)
    rep = config.reps[first.rep]
    reply_as_client(buyer_bed, rep.email, first.forward_message_id, TUESDAY_10 + timedelta(minutes=3))
    answered = wait_for(lambda: [a for a in assignments(config) if a.first_reply_at], "the reply")[0]
    assert answered.reply_seconds == 180
    assert answered.reply_business_seconds == 180
    assert answered.replied_by == rep.id
    clock.now = TUESDAY_10 + timedelta(hours=2)  # long past every step: none may fire now
    time.sleep(0.5)
    assert steps(config) == []
    assert len(buyer_bed.fetch_all(BUYER)) == 1  # the buyer really got the reply


@pytest.mark.parametrize("threshold", [None, 1], ids=["in-memory", "spooled"])
def test_ladder_reminds_escalates_reassigns_and_the_new_reps_reply_stops_it(buyer_bed, tmp_path, running,
                                                                            threshold, monkeypatch):
    # the sweep fetches and moves over the mailbox loop's connection: no IMAP login of its own
    # (extra logins once hit Dovecot's per-user connection limit under load)
    from mailrouter.intake.imap import Mailbox
    logins: list[str] = []
    real_connect = Mailbox.connect.__func__
    monkeypatch.setattr(Mailbox, "connect", classmethod(
        lambda cls, settings, **options: logins.append(settings.user) or real_connect(cls, settings, **options)))
    # spooled: the inquiry counts as big, so the reassignment forwards it from a spool file
    # labels naming the rep: the reassigned forward must follow them like the first one
    config = sla_config(buyer_bed, tmp_path, {"large_message_bytes": threshold} if threshold else None,
                        forward={"labels": "[to {rep}]"})
    clock = MovableClock(TUESDAY_10)
    _daemon, first = route_one(buyer_bed, config, clock, running)
    rep = config.reps[first.rep]
    other = next(m for m in config.teams["europe"].members if m != rep.id)
    shared_logins = logins.count(config.mailboxes[0].server.user)  # the mailbox loop's own, so far

    clock.now = TUESDAY_10 + timedelta(minutes=6)
    wait_for(lambda: any("Reminder" in s or "提醒" in s for s in inbox_subjects(buyer_bed, rep.email)),
             "the reminder")
    assert steps(config) == ["remind@5m"]

    clock.now = TUESDAY_10 + timedelta(minutes=16)
    wait_for(lambda: inbox_subjects(buyer_bed, "wang@example.com"), "the escalation")
    assert steps(config) == ["remind@5m", "escalate@15m"]

    clock.now = TUESDAY_10 + timedelta(minutes=31)
    wait_for(lambda: len(assignments(config)) == 2, "the reassignment")
    old, new = assignments(config)
    assert (old.end_reason, new.rep, new.how, new.reassigned_from) == ("reassigned", other, "reassign", old.id)
    forwarded = wait_for(lambda: [(str(m["Subject"]), str(m["X-Mailrouter-Labels"]))
                                  for m in map(parsed, buyer_bed.fetch_all(config.reps[other].email))
                                  if "Demande de prix LED" in str(m["Subject"])], "the forward to the new rep")
    assert forwarded == [("Demande de prix LED", f"[to {other}]")]  # forward.labels, not a fixed tag
    # the new rep reads whose inquiry it was by name, as they know each other (issue 15 item 2)
    body = next(m for m in map(parsed, buyer_bed.fetch_all(config.reps[other].email))
                if "Demande de prix LED" in str(m["Subject"])).get_body(("plain",)).get_content()
    said = {"en": f"from {rep.name}: no reply after", "zh": f"由 {rep.name} 转来："}[config.reps[other].language]
    assert said in body and f"from {rep.id}" not in body
    if threshold:
        with open_database(config.database)() as session:
            spooled = session.scalars(select(OutboxRow.spool_path).where(OutboxRow.kind == "forward")).all()
        assert len(spooled) == 2 and all(spooled)  # the first forward and the reassigned one
        wait_for(lambda: not any(config.spool_dir.iterdir()), "the spool files to be removed")
    wait_for(lambda: len(inbox_subjects(buyer_bed, rep.email)) == 3, "the notice to the previous rep")

    reply_as_client(buyer_bed, config.reps[other].email, new.forward_message_id,
                    TUESDAY_10 + timedelta(minutes=40))
    done = wait_for(lambda: [a for a in assignments(config) if a.first_reply_at], "the new rep's reply")
    assert done[0].id == new.id and done[0].reply_seconds == 9 * 60
    assert logins.count(config.mailboxes[0].server.user) == shared_logins  # the ladder logged in nowhere


def test_inquiry_on_friday_night_is_due_monday_at_opening_plus_grace(buyer_bed, tmp_path, running):
    config = sla_config(buyer_bed, tmp_path)
    friday_23 = datetime(2026, 11, 20, 15, 0, tzinfo=timezone.utc)  # 23:00 Asia/Shanghai
    _daemon, first = route_one(buyer_bed, config, MovableClock(friday_23), running)
    monday = datetime(2026, 11, 23, 9, 15, tzinfo=config.timezone)
    assert first.due_at == monday


def test_restart_between_steps_neither_repeats_nor_skips(buyer_bed, tmp_path, running):
    config = sla_config(buyer_bed, tmp_path)
    clock = MovableClock(TUESDAY_10)
    daemon, first = route_one(buyer_bed, config, clock, running)
    rep = config.reps[first.rep]
    clock.now = TUESDAY_10 + timedelta(minutes=6)
    wait_for(lambda: len(buyer_bed.fetch_all(rep.email)) == 2, "the reminder")
    daemon.stop()

    clock.now = TUESDAY_10 + timedelta(minutes=16)
    running(config, clock)
    wait_for(lambda: inbox_subjects(buyer_bed, "wang@example.com"), "the escalation after restart")
    time.sleep(0.5)  # several sweeps: none may repeat the reminder
    assert steps(config) == ["remind@5m", "escalate@15m"]
    assert len(buyer_bed.fetch_all(rep.email)) == 2  # forward + one reminder
    assert len(buyer_bed.fetch_all("wang@example.com")) == 1


class Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"errcode": 0, "errmsg": "ok"}')

    def log_message(self, *args):
        pass


def test_wecom_webhook_receives_the_escalation(buyer_bed, tmp_path, running, monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received = []
    monkeypatch.setenv("WECOM_URL", f"http://127.0.0.1:{server.server_port}/cgi-bin/webhook/send?key=SECRET")
    try:
        config = sla_config(buyer_bed, tmp_path, webhook=[{"name": "sales-group", "format": "wecom",
                                                           "url_env": "WECOM_URL", "batch": "1s"}])
        clock = MovableClock(TUESDAY_10)
        route_one(buyer_bed, config, clock, running)
        clock.now = TUESDAY_10 + timedelta(minutes=6)
        wait_for(lambda: Receiver.received, "the reminder's post")
        clock.now = TUESDAY_10 + timedelta(minutes=16)  # one step at a time: due together, only the last goes
        wait_for(lambda: len(Receiver.received) >= 2, "the webhook posts")
    finally:
        server.shutdown()
        server.server_close()
    escalation = next(p for p in Receiver.received if "wang" in json.dumps(p, ensure_ascii=False).lower()
                      or "升级" in json.dumps(p, ensure_ascii=False) or "Escalation" in json.dumps(p))
    assert escalation["msgtype"] == "markdown"
    assert "Demande de prix LED" in escalation["markdown"]["content"]


def test_another_rep_writing_to_the_customer_is_a_collision_told_once_a_day(buyer_bed, tmp_path, running):
    from mailrouter.store import CollisionRow

    config = sla_config(buyer_bed, tmp_path)
    clock = MovableClock(TUESDAY_10)
    _daemon, first = route_one(buyer_bed, config, clock, running)
    owner = first.rep
    other = next(m for m in config.teams["europe"].members if m != owner)
    for minutes in (2, 3):  # the other rep writes to the owner's customer, twice
        reply_as_client(buyer_bed, config.reps[other].email, "<unrelated@example.com>",
                        TUESDAY_10 + timedelta(minutes=minutes))

    def collisions():
        with open_database(config.database)() as session:
            return list(session.scalars(select(CollisionRow).order_by(CollisionRow.id)))

    rows = wait_for(lambda: len(collisions()) == 2 and collisions(), "two collisions")
    assert [(r.owner, r.rep, r.customer) for r in rows] == [(owner, other, BUYER)] * 2
    assert [r.notified for r in rows] == [True, False]
    notices = wait_for(lambda: [s for s in inbox_subjects(buyer_bed, "wang@example.com")
                                if "撞单" in s or "ollision" in s], "the supervisor's notice")
    time.sleep(0.5)
    assert len(notices) == 1


@pytest.mark.parametrize("cut", ["before the move", "after the move"])
def test_a_reassigned_copy_reaches_the_new_reps_folder_when_its_move_is_cut_off(buyer_bed, tmp_path, running,
                                                                              monkeypatch, cut):
    """The ledger records the copy's new folder, then the mailbox's filer moves it. A move cut
    off before it happened (a dropped connection, a crash) left the copy in the old rep's folder
    for good, where the next step could not find it; cut off after it happened, the next round
    must find the copy already there, not move it again (issue 11, "one filer")."""
    from mailrouter.intake.imap import ImapConnectionLost, Mailbox
    from tests.mailcheck import folder_of, server_folder, shared_copies

    config = sla_config(buyer_bed, tmp_path)
    clock = MovableClock(TUESDAY_10)
    _daemon, first = route_one(buyer_bed, config, clock, running)
    other = next(m for m in config.teams["europe"].members if m != first.rep)
    old_folder = config.folders.routed.format(rep=config.reps[first.rep].folder)
    new_folder = config.folders.routed.format(rep=config.reps[other].folder)
    wait_for(lambda: folder_of(shared_copies(buyer_bed, "sales@example.com"), french_inquiry())
             == [server_folder(buyer_bed, "sales@example.com", old_folder)], "the copy filed for the first rep", timeout=60)
    cuts: list[str] = []
    real_file = Mailbox.file

    def file(self, uids, folder, keywords=(), seen=True):
        if folder != new_folder or cuts:
            return real_file(self, uids, folder, keywords, seen)
        cuts.append(cut)
        if cut == "after the move":
            real_file(self, uids, folder, keywords, seen)
        raise ImapConnectionLost(f"connection cut off {cut} (test)")

    monkeypatch.setattr(Mailbox, "file", file)
    clock.now = TUESDAY_10 + timedelta(minutes=31)
    wait_for(lambda: len(assignments(config)) == 2, "the reassignment", timeout=60)
    assert wait_for(lambda: cuts, "the move to be tried", timeout=60) == [cut]
    wait_for(lambda: folder_of(shared_copies(buyer_bed, "sales@example.com"), french_inquiry())
             == [server_folder(buyer_bed, "sales@example.com", new_folder)],
             "the copy in the new rep's folder, once", timeout=60)
    with open_database(config.database)() as session:
        from mailrouter.store import MessageRow
        (row,) = session.scalars(select(MessageRow))
    assert (row.folder, row.rep) == (new_folder, other)
