"""The core scenarios against a second real SMTP server: Exim 4 from Debian, started from a temp dir
in place of the bed's aiosmtpd relay (mailrouter/testing/exim.py). Mailrouter submits with AUTH,
Exim applies Debian's default DATA checks (lines over 998 octets, header syntax) and delivers into
the bed's Dovecot over LMTP; the tests read the reps' mailboxes as a mail client would."""
from __future__ import annotations

import base64
import re
import shutil
import smtplib
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import select

from mailrouter.act.outbox import Outbox
from mailrouter.act.outgoing import queue_notice
from mailrouter.commands.demo import deliver_samples, rep_reply_sources, write_testbed_config
from mailrouter.config.load import Config, load_config
from mailrouter.intake.fingerprint import content_key
from mailrouter.runtime.daemon import Daemon
from mailrouter.store import AssignmentRow, MessageRow, OutboxRow, SlaStepRow, open_database
from mailrouter.testing.exim import INSTALL_HINT, EximBed, exim_installed
from mailrouter.testing.hostile import replay_order
from mailrouter.testing.samples import FRENCH, Sample, compose, demo_samples
from tests.conftest import ADDRESSES
from tests.factories import ROOT
from tests.mailcheck import (MovableClock, attached_original, folder_of, forwards_by_original, parsed,
                             route_all, shared_copies, wait_for)

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not exim_installed(), reason=f"Exim not found ({INSTALL_HINT})")]

SALES = "sales@example.com"
BUYER = "marie@lumiere-lyon.fr"
TUESDAY_10 = datetime(2026, 11, 17, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai, within business hours


@pytest.fixture
def exim(bed_root: Path, tmp_path: Path) -> Iterator[EximBed]:
    """A fresh Dovecot + Exim bed; Exim's logs are kept in tmp_path for post-mortems."""
    bed = EximBed(bed_root / "bed", [*ADDRESSES, BUYER])
    try:
        bed.start()
        yield bed
    finally:
        bed.stop()
        for log in (bed_root / "bed" / "exim" / "log").glob("*log"):
            shutil.copy(log, tmp_path / f"exim-{log.name}")


def exim_config(bed: EximBed, workdir: Path, overrides: dict | None = None, **daemon: object) -> Config:
    """The demo config on the Exim bed, submitting as sales@ with AUTH (Exim relays nothing without it)."""
    path = write_testbed_config(ROOT / "config.toml", bed, workdir, overrides, **daemon)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data["smtp"].update(user=SALES, password_file=str(workdir / "password"))
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return load_config(path)


def message_id(sample: Sample) -> str:
    return str(parsed(sample.raw)["Message-ID"])


def exim_settled(bed: EximBed) -> str:
    """Wait until every message Exim accepted has left its queue; its main log then."""
    def settled() -> str | None:
        log = bed.mainlog()
        received = set(re.findall(r" (\S+) <= ", log))
        completed = set(re.findall(r" (\S+) Completed", log))
        return log if received <= completed and bed.queue() == "" else None
    return wait_for(settled, "Exim to deliver every message it accepted", timeout=60)


def assert_delivered_without_trouble(log: str) -> None:
    """Each accepted message came in authenticated and went to Dovecot at the first try:
    no bounce (**), no deferred delivery (==), nothing frozen."""
    arrivals = [line for line in log.splitlines() if " <= " in line]
    assert arrivals and all(" P=esmtpa A=plain:sales@example.com " in line for line in arrivals), arrivals
    trouble = [line for line in log.splitlines() if re.search(r" (\*\*|==) |frozen", line)]
    assert trouble == []


def submit(bed: EximBed, rcpt: str, data: bytes, password: str | None = None) -> tuple[int, bytes]:
    """One submission as sales@; the code and text of Exim's answer, wherever it refused."""
    with smtplib.SMTP(bed.host, bed.smtp_port, timeout=30) as smtp:
        try:
            if password is not None:
                smtp.login(SALES, password)
            smtp.sendmail(SALES, [rcpt], data)
        except smtplib.SMTPRecipientsRefused as exc:
            return exc.recipients[rcpt]
        except smtplib.SMTPResponseException as exc:
            return exc.smtp_code, exc.smtp_error
    return 250, b""


def test_the_exim_bed_refuses_what_debians_exim_refuses(exim):
    """What makes it a stricter server than aiosmtpd, so the forwards' tests below mean something."""
    ok = b"From: sales@example.com\r\nTo: zhang@example.com\r\nSubject: x\r\n\r\n"
    assert submit(exim, "zhang@example.com", ok + b"y" * 998 + b"\r\n", exim.password)[0] == 250
    assert submit(exim, "zhang@example.com", ok)[0] == 530  # no AUTH
    assert submit(exim, "zhang@example.com", ok, "wrong")[0] == 535
    assert submit(exim, "nobody@example.com", ok, exim.password)[0] == 550
    code, text = submit(exim, "zhang@example.com", ok + b"y" * 999 + b"\r\n", exim.password)
    assert (code, b"line length" in text) == (550, True)
    code, text = submit(exim, "zhang@example.com", ok.replace(b"To: zhang@", b"To: zhang@@"), exim.password)
    assert (code, text) == (550, b"header syntax")
    assert_delivered_without_trouble(exim_settled(exim))
    assert len(exim.fetch_all("zhang@example.com")) == 1


def test_every_demo_inquiry_reaches_its_rep_through_exim(exim, tmp_path):
    config = exim_config(exim, tmp_path)
    samples = demo_samples()
    route_all(exim, config, samples)
    log = exim_settled(exim)
    assert_delivered_without_trouble(log)

    forwards = forwards_by_original(exim, config)
    routed = [s for s in samples if s.outcome == "routed"]
    assert set(forwards) == {message_id(s) for s in routed}
    for sample in routed:
        (rep, fwd), = forwards[message_id(sample)]
        if not sample.target.startswith("team:"):
            assert rep == sample.target, sample.label
        buyer = parsed(sample.raw)
        expected = sample.buyer or (buyer["Reply-To"] or buyer["From"]).addresses[0].addr_spec
        assert fwd["Reply-To"].addresses[0].addr_spec.lower() == expected.lower(), sample.label
        assert fwd["From"].addresses[0].addr_spec in sample.to  # the shared mailbox it was routed from
        assert str(fwd["Subject"]).endswith(" ".join(str(buyer["Subject"]).split())), sample.label
        assert content_key(attached_original(fwd)) == content_key(sample.raw), sample.label
    assert log.count(" <= ") == len(routed)  # nothing but the forwards went through Exim

    chinese = next(s for s in routed if s.label == "Chinese-speaking buyer")
    (_rep, fwd), = forwards[message_id(chinese)]
    buyer = parsed(chinese.raw)
    assert str(fwd["Subject"]) == str(buyer["Subject"]) and re.search(r"[\u4e00-\u9fff]", str(fwd["Subject"]))
    assert str(fwd["From"]).startswith(f"{buyer['From'].addresses[0].display_name} ")  # "Buyer via Sales"
    assert re.search(r"[\u4e00-\u9fff]", fwd.get_body(("plain",)).get_content())

    sales = shared_copies(exim, SALES)
    assert sales["INBOX"] == []
    for sample in (s for s in samples if "sales@example.com" in s.to and not s.duplicate_in):
        assert len(folder_of(sales, sample)) == 1, sample.label


def french_inquiry() -> Sample:
    return Sample("French buyer", (SALES,), compose(f"Marie Dubois <{BUYER}>", "Demande de prix LED", FRENCH, n=401),
                  "routed")


def inbox_subjects(bed: EximBed, user: str) -> list[str]:
    return [str(parsed(raw)["Subject"]) for raw in bed.fetch_all(user)]


def test_reminder_and_escalation_notices_arrive_through_exim(exim, tmp_path):
    overrides = {"sla": {"sweep_interval": 0.1},
                 "reply_source": rep_reply_sources(ROOT / "config.toml", exim, tmp_path / "password")}
    config = exim_config(exim, tmp_path, overrides)
    clock = MovableClock(TUESDAY_10)
    deliver_samples(exim, [french_inquiry()])
    daemon = Daemon(config, clock)
    daemon.start()
    try:
        first = wait_for(lambda: assignments(config), "the assignment", timeout=60)[0]
        rep = config.reps[first.rep]
        wait_for(lambda: exim.fetch_all(rep.email), "the forward", timeout=60)
        clock.now = TUESDAY_10 + timedelta(minutes=6)
        reminder = wait_for(lambda: [s for s in inbox_subjects(exim, rep.email) if "Reminder" in s or "提醒" in s],
                            "the reminder", timeout=60)
        clock.now = TUESDAY_10 + timedelta(minutes=16)
        escalation = wait_for(lambda: inbox_subjects(exim, "wang@example.com"), "the escalation", timeout=60)
    finally:
        daemon.stop()
    assert steps(config) == ["remind@5m", "escalate@15m"]
    assert "Demande de prix LED" in reminder[0] and "Demande de prix LED" in escalation[0]
    notice = parsed(exim.fetch_all("wang@example.com")[0])
    assert notice["Auto-Submitted"] == "auto-generated"
    assert re.search(r"[\u4e00-\u9fff]", str(notice["Subject"]))  # wang reads Chinese (language = "zh")
    assert_delivered_without_trouble(exim_settled(exim))


def assignments(config: Config) -> list[AssignmentRow]:
    with open_database(config.database)() as session:
        return list(session.scalars(select(AssignmentRow).order_by(AssignmentRow.id)))


def steps(config: Config) -> list[str]:
    with open_database(config.database)() as session:
        return list(session.scalars(select(SlaStepRow.step).order_by(SlaStepRow.id)))


def outbox(config: Config) -> list[OutboxRow]:
    with open_database(config.database)() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def test_a_451_from_exim_is_retried_until_accepted(exim, tmp_path):
    config = exim_config(exim, tmp_path)
    sample = demo_samples()[0]
    reps = [rep.email for rep in config.reps.values()]
    for address in reps:
        exim.refuse(address, 451)
    deliver_samples(exim, [sample])
    daemon = Daemon(config)
    daemon.start()
    try:
        wait_for(lambda: [i for i in outbox(config) if i.attempts >= 2], "two refused attempts", timeout=60)
        for address in reps:
            exim.accept(address)
        wait_for(lambda: [i for i in outbox(config) if i.status == "sent"], "the retry to be accepted", timeout=90)
    finally:
        daemon.stop()
    item, = outbox(config)
    assert item.attempts >= 3 and item.last_error.startswith("451") and "exim test bed" in item.last_error
    exim_settled(exim)
    assert [len(v) for v in forwards_by_original(exim, config).values()] == [1]
    assert exim.mainlog().count("rejected after DATA") >= 2


def test_a_550_from_exim_files_the_copy_as_undeliverable(exim, tmp_path):
    config = exim_config(exim, tmp_path)
    sample = demo_samples()[0]
    for rep in config.reps.values():
        exim.refuse(rep.email, 550)
    route_all(exim, config, [sample])
    assert forwards_by_original(exim, config) == {}
    assert folder_of(shared_copies(exim, SALES), sample) == [config.folders.undeliverable]
    with open_database(config.database)() as session:
        row = session.scalars(select(MessageRow)).one()
    assert row.outcome == "undeliverable" and "550" in row.reason and "exim test bed" in row.reason


def test_a_session_closed_by_exims_message_cap_costs_no_forward_a_retry(bed_root, tmp_path):
    """Exim answers 421 to the MAIL command past smtp_accept_max_per_connection (1,000 by default)
    and closes the session: the forward that met it waited retry_initial (30 s) and was counted
    as a failed attempt, as if the server had refused it. It goes at once on a new session now."""
    bed = EximBed(bed_root / "capped", [*ADDRESSES, BUYER], messages_per_connection=3)
    bed.start()
    try:
        config = exim_config(bed, tmp_path, {"smtp": {"connections": 1}})
        sessions = open_database(config.database)
        now = datetime.now(UTC)
        with sessions.begin() as session:
            for n in range(8):
                queue_notice(session, config, "li@example.com", f"Reminder {n}", "body",
                             f"<mr.notice.{n}@example.com>", now)
        assert Outbox(config, sessions).flush(config.mailboxes[0].name) == 8
        assert [(i.status, i.attempts, i.last_error) for i in outbox(config)] == [("sent", 1, None)] * 8
        assert bed.mainlog().count("too many messages in one connection") == 2  # after the 3rd and the 6th
        exim_settled(bed)
        assert len(bed.fetch_all("li@example.com")) == 8
    finally:
        bed.stop()


def test_a_backlog_is_delivered_at_once_though_exim_queues_past_10_messages_a_session(exim, tmp_path):
    """Past smtp_accept_queue_per_connection (10 by default) messages in one session, Exim only
    queues the rest until its next queue run, 30 minutes away on Debian: forwards 11 and later of
    a backlog sent over one session reached the rep that much later (after the 5-minute reminder)."""
    config = exim_config(exim, tmp_path, {"smtp": {"connections": 1}})
    sessions = open_database(config.database)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        for n in range(25):
            queue_notice(session, config, "li@example.com", f"Reminder {n}", "body", f"<mr.notice.{n}@example.com>", now)
    assert Outbox(config, sessions).flush(config.mailboxes[0].name) == 25
    exim_settled(exim)  # nothing left on Exim's queue: no queue runner will ever come here
    assert len(exim.fetch_all("li@example.com")) == 25


# -- what Exim refuses and aiosmtpd takes: lines over 998 octets, bad header syntax, 8-bit without 8BITMIME

PCB = ("Sehr geehrte Damen und Herren,\r\n\r\nbitte ein Angebot für 5000 Stück mehrlagige Leiterplatten.\r\n\r\n"
       "Mit freundlichen Grüßen\r\nKlaus Becker\r\nEinkauf, Becker Elektronik GmbH\r\n")


def hard_inquiries() -> list[Sample]:
    """Originals whose forwards test Exim's checks: 8-bit text (BODY=8BITMIME), a 1,500-octet line,
    raw UTF-8 headers (RFC 6532), 2,000-character names and subjects, names with quotes, commas,
    brackets and encoded words, and the hostile-mail set."""
    def raw(n: int, head: str, body: str = PCB, cte: str = "8bit") -> bytes:
        return (f"{head}To: sales@example.com\r\nMessage-ID: <hard.{n}@becker-elektronik.de>\r\n"
                f"Date: Tue, 17 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}").encode()
    german = "From: Klaus Becker <k.becker@becker-elektronik.de>\r\nSubject: Anfrage Leiterplatten\r\n"
    cases = [
        ("8-bit body", raw(1, german)),
        ("1,500-octet line", raw(2, german, PCB + "Technische Daten: " + "x" * 1_500 + "\r\n")),
        ("raw UTF-8 headers", raw(3, "From: 王芳 <wang.fang@shenzhen-led.cn>\r\nSubject: 询价：LED 面板 5000 件\r\n",
                                  "您好，\r\n\r\n请报价 5000 件 LED 面板，含交货期。\r\n\r\n王芳\r\n采购部\r\n")),
        ("long names and subject", raw(4, f'From: "Klaus{"K" * 1995}" <k.becker@becker-elektronik.de>\r\n'
                                          f'Subject: Anfrage Leiterplatten {"L" * 2000}\r\n'
                                          f'Reply-To: "{"R" * 1500} {"r" * 900}" <purchasing@becker-group.de>\r\n')),
    ]
    names = [  # display names that need quoting or encoding in the forward's From and Reply-To
        '"Weber, Klaus" <k.weber@weber-armaturen.de>', "Klaus (Einkauf) Weber <k.weber1@weber-armaturen.de>",
        '"Klaus \\"KW\\" Weber" <k.weber2@weber-armaturen.de>',
        "=?utf-8?q?Weber=2C_Klaus_=3Cboss=40x=2Ede=3E?= <k.weber3@weber-armaturen.de>",
        "k.weber4@weber-armaturen.de (Klaus Weber)",
        'Klaus Weber <k.weber5@weber-armaturen.de>\r\nReply-To: "Einkauf; Team" <einkauf@weber-armaturen.de>',
    ]
    cases += [(f"name {n}", raw(10 + n, f"From: {name}\r\nSubject: Anfrage Leiterplatten\r\n"))
              for n, name in enumerate(names)]
    cases += [(f"hostile {h.case}", h.raw) for h in replay_order("main")]
    return [Sample(label, (SALES,), data, "routed") for label, data in cases]


def embedded_original(forward: bytes) -> bytes:
    """The attached original as a mail client saves it: the message/rfc822 part, base64 decoded."""
    boundary = parsed(forward).get_boundary().encode()
    headers, _, body = forward.split(b"\r\n--" + boundary)[-2].partition(b"\r\n\r\n")
    assert b"Content-Type: message/rfc822" in headers
    return base64.b64decode(body) if b"Content-Transfer-Encoding: base64" in headers else body


@pytest.mark.parametrize("threshold", [None, 1], ids=["in-memory", "spooled"])
def test_forwards_of_hard_originals_pass_exims_checks(exim, tmp_path, threshold):
    config = exim_config(exim, tmp_path, **({"large_message_bytes": threshold} if threshold else {}))
    samples = hard_inquiries()
    route_all(exim, config, samples)
    log = exim_settled(exim)

    with open_database(config.database)() as session:
        rows = list(session.scalars(select(MessageRow)))
    refused = [(r.message_id, r.reason) for r in rows if r.outcome == "undeliverable"]
    assert refused == [] and "rejected" not in log
    assert_delivered_without_trouble(log)
    routed = [r for r in rows if r.outcome == "routed"]
    assert len(routed) >= 10 + len(samples) // 2  # the ten above and every hostile case's sentinel
    copies = [c for folder in shared_copies(exim, SALES).values() for c in folder]
    forwards = [raw for rep in config.reps.values() for raw in exim.fetch_all(rep.email)]
    assert len(forwards) == len(routed)
    for raw in forwards:  # byte for byte, after any base64 (one hostile case has no Message-ID to match by)
        assert embedded_original(raw) in copies, parsed(raw)["Subject"]
    chinese = next(parsed(raw) for raw in forwards if b"<hard.3@becker-elektronik.de>" in raw)
    assert str(chinese["Subject"]) == "询价：LED 面板 5000 件"
    assert str(chinese["From"]).startswith("王芳 ")
    assert "M8S=8" in log  # 8-bit forwards were announced BODY=8BITMIME, and Exim took them so
