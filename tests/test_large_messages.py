"""Big messages on the test bed: spooled, forwarded byte for byte from the file, never lost."""
from __future__ import annotations

import base64
import signal
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from mailrouter.config.load import Config, load_config
from mailrouter.runtime.daemon import Daemon
from mailrouter.commands.demo import deliver_samples, write_testbed_config
from mailrouter.testing.samples import Sample, bulk_samples
from mailrouter.store import MessageRow, OutboxRow, open_database
from mailrouter.act.templating import filesize
from mailrouter.testing.testbed import TestBed
from tests.factories import ROOT
from tests.mailcheck import (configure, count_rows, parsed, restart_and_finish, route_all, server_folder,
                             shared_copies, start_daemon_process, wait_for)

pytestmark = pytest.mark.integration
THRESHOLD = 64 * 1024


def big_inquiry(attachment_size: int = 1_000_000) -> Sample:
    return bulk_samples(1, start=7_000, attachment_every=1, attachment_size=attachment_size)[0]


def embedded_original(forward: bytes) -> bytes:
    """The message/rfc822 part's bytes as they sit in the forward, cut out at its boundary
    (what a mail client saves as original.eml)."""
    boundary = parsed(forward).get_boundary().encode()
    last_part = forward.split(b"\r\n--" + boundary)[-2]
    headers, _, body = last_part.partition(b"\r\n\r\n")
    assert b"Content-Type: message/rfc822" in headers
    return body


def rows(config: Config, table):
    with open_database(config.database)() as session:
        return list(session.scalars(select(table).order_by(table.id)))


def the_forward(bed: TestBed, config: Config) -> bytes:
    forwards = [raw for rep in config.reps.values() for raw in bed.fetch_all(rep.email)]
    assert len(forwards) == 1, len(forwards)
    return forwards[0]


def shared_copy(bed: TestBed, folder: str) -> bytes:
    (copy,) = bed.fetch_all("sales@example.com", server_folder(bed, "sales@example.com", folder))
    return copy


def test_a_big_inquiry_is_forwarded_from_the_spool_byte_for_byte(bed: TestBed, tmp_path: Path) -> None:
    config = configure(bed, tmp_path, large_message_bytes=THRESHOLD)
    sample = big_inquiry()
    route_all(bed, config, [sample])

    (message,), (item,) = rows(config, MessageRow), rows(config, OutboxRow)
    assert message.outcome == "routed" and message.size > 1_000_000
    assert item.status == "sent" and item.spool_path and item.payload is None and item.tail is None
    forward = the_forward(bed, config)
    delivered = shared_copy(bed, message.folder)  # the customer's mail as the server holds it
    assert embedded_original(forward) == delivered
    original = parsed(embedded_original(forward))
    pdf = next(p for p in original.walk() if p.get_filename() == "RFQ-0.pdf").get_content()
    assert pdf == next(p for p in parsed(sample.raw).walk() if p.get_filename() == "RFQ-0.pdf").get_content()
    routing_block = parsed(forward).get_body(("plain",)).get_content()
    assert f"RFQ-0.pdf（{filesize(len(pdf))}）" in routing_block  # its size, as the scan found it
    assert bed.fetch_all("sales@example.com") == []
    assert list(config.spool_dir.iterdir()) == []


def test_sigkill_while_a_spooled_forward_waits_loses_nothing(bed: TestBed, tmp_path: Path) -> None:
    config_path = write_testbed_config(ROOT / "config.toml", bed, tmp_path, large_message_bytes=THRESHOLD)
    config = load_config(config_path)
    bed.smtp_fail_next(1000, code=451)  # every DATA answered "try again later", after the whole message
    deliver_samples(bed, [big_inquiry()])
    log = tmp_path / "daemon.log"
    first = start_daemon_process(config_path, log)
    try:
        item = wait_for(lambda: next((r for r in rows(config, OutboxRow) if r.attempts >= 1), None),
                        "a failed attempt", timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert item.status == "pending" and item.last_error.startswith("451") and Path(item.spool_path).is_file()
    assert len(bed.fetch_all("sales@example.com")) == 1  # not filed before it is sent
    # what a crash between writing a spool file and recording it leaves behind
    stray = config.spool_dir / "sales-00000000-1-99.eml"
    stray.write_bytes(b"From: x@y.z\r\n\r\nleft by a crash\r\n")

    bed.smtp_fail_next(0)
    restart_and_finish(config, config_path, log, 1, timeout=60)
    delivered = shared_copy(bed, rows(config, MessageRow)[0].folder)
    assert embedded_original(the_forward(bed, config)) == delivered
    assert list(config.spool_dir.iterdir()) == []


def test_a_lost_spool_file_is_fetched_again_from_the_inbox(bed: TestBed, tmp_path: Path) -> None:
    up = configure(bed, tmp_path, large_message_bytes=THRESHOLD)
    down = replace(up, smtp=replace(up.smtp, server=replace(up.smtp.server, port=1)))
    deliver_samples(bed, [big_inquiry()])
    daemon = Daemon(down)
    daemon.start()
    try:
        wait_for(lambda: count_rows(down) == 1, "the decision")
    finally:
        daemon.stop()
    (item,) = rows(down, OutboxRow)
    Path(item.spool_path).unlink()

    route_all(bed, up, [])
    (item,) = rows(up, OutboxRow)
    assert item.status == "sent"
    assert embedded_original(the_forward(bed, up)) == shared_copy(bed, rows(up, MessageRow)[0].folder)


def test_a_forward_over_the_servers_size_limit_is_not_sent(make_bed, tmp_path: Path) -> None:
    bed = make_bed(smtp_size_limit=500_000)
    config = configure(bed, tmp_path, large_message_bytes=THRESHOLD)
    route_all(bed, config, [big_inquiry()])
    (message,), (item,) = rows(config, MessageRow), rows(config, OutboxRow)
    assert (message.outcome, item.status, item.attempts) == ("undeliverable", "failed", 1)
    assert "over the SMTP server's limit of 500,000" in message.reason
    assert shared_copies(bed, "sales@example.com")[server_folder(bed, "sales@example.com",
                                                                 config.folders.undeliverable)]
    assert [raw for rep in config.reps.values() for raw in bed.fetch_all(rep.email)] == []
    assert list(config.spool_dir.iterdir()) == []


def poison(boundary_param: bytes, boundary: bytes, disposition: bytes, number: int) -> Sample:
    """A > 64 KiB inquiry whose MIME headers the spool scan used to raise on (review P1)."""
    pdf = b"JVBERi0xLjQK" * 6 + b"\r\n"
    body = (b"--" + boundary + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + "Wir bitten um ein Angebot für 500 Ventile aus Edelstahl.\r\n".encode()
            + b"--" + boundary + b"\r\nContent-Type: application/pdf\r\nContent-Disposition: " + disposition
            + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + pdf * 2000 + b"--" + boundary + b"--\r\n")
    raw = (b"From: Buyer <buyer%d@buyer-%d.test>\r\nTo: sales@example.com\r\nSubject: RFQ spooled %d\r\n"
           b"Message-ID: <poison-%d@buyer.test>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; %s\r\n\r\n" % (number, number, number, number, boundary_param)) + body
    return Sample(f"poison-{number}", ("sales@example.com",), raw, "quarantined")


def test_big_messages_the_scan_cannot_read_are_quarantined_and_the_mailbox_goes_on(
        bed: TestBed, tmp_path: Path) -> None:
    """Review P1: such a message used to fail every round (never filed, nothing else filed
    after it, retries backing off to 5 minutes). Now: quarantined with the reason, or read,
    and an ordinary inquiry delivered with them is forwarded and filed in the same run."""
    config = configure(bed, tmp_path, large_message_bytes=THRESHOLD)
    unreadable = poison(b"boundary*=idna''abc", b"abc", b"attachment", 1)  # the stdlib raises on it
    zip_name = poison(b'boundary="b"', b"b", b'attachment; filename="=?zip?B?eA==?="', 2)
    raw_8bit = poison('boundary="über-grenze"'.encode(), "über-grenze".encode(), b"attachment", 3)
    ordinary = bulk_samples(1, start=7_100)[0]
    route_all(bed, config, [unreadable, zip_name, ordinary, raw_8bit])

    by_subject = {row.subject: row for row in rows(config, MessageRow)}
    assert all(row.state == "filed" for row in by_subject.values())
    quarantined = [row for row in by_subject.values() if row.outcome == "quarantined"]
    assert len(quarantined) == 1 and "unreadable MIME structure" in quarantined[0].reason
    assert "idna" in quarantined[0].reason
    assert by_subject["RFQ spooled 2"].outcome != "quarantined"  # read (its buyer is unknown here)
    assert len(server_folder_copies := bed.fetch_all(
        "sales@example.com", server_folder(bed, "sales@example.com", config.folders.quarantine))) == 1
    assert b"Message-ID: <poison-1@buyer.test>" in server_folder_copies[0]
    routed = [raw for rep in config.reps.values() for raw in bed.fetch_all(rep.email)]
    assert any(parsed(raw)["Subject"] and ordinary_subject(ordinary) in parsed(raw)["Subject"] for raw in routed)
    assert bed.fetch_all("sales@example.com") == []  # nothing left in INBOX


def ordinary_subject(sample: Sample) -> str:
    return str(parsed(sample.raw)["Subject"])


def eight_bit(sample: Sample, extra: bytes = b"", long_line: int = 0) -> Sample:
    """`sample` re-sent as raw UTF-8 (CTE 8bit), optionally with one line of `long_line` octets."""
    head, _, _body = sample.raw.partition(b"\n\n")
    head = head.replace(b"Content-Transfer-Encoding: quoted-printable", b"Content-Transfer-Encoding: 8bit")
    body = "Sehr geehrte Damen und Herren,\n\nbitte ein Angebot für 5000 Stück Leiterplatten.\n\nGrüße\n".encode()
    body += (b"Technische Daten: " + b"x" * long_line + b"\n" if long_line else b"") + extra
    return replace(sample, raw=(head + b"\n\n" + body).replace(b"\n", b"\r\n"))


def decoded_original(forward: bytes) -> bytes:
    part = next(p for p in parsed(forward).walk() if p.get_content_type() == "message/rfc822")
    body = embedded_original(forward)
    return base64.b64decode(body) if part["Content-Transfer-Encoding"] == "base64" else body


def test_forwards_reach_a_server_that_enforces_the_line_limit(make_bed, tmp_path: Path) -> None:
    """Review P6: on a server refusing lines over 998 octets every long-line forward became
    Undeliverable, and 8-bit forwards were sent without BODY=8BITMIME. Small and spooled
    originals: a long line (base64-wrapped), plain 8-bit text (BODY=8BITMIME), a long Message-ID."""
    bed = make_bed(smtp_strict_lines=True)
    config = configure(bed, tmp_path, large_message_bytes=THRESHOLD)
    base = bulk_samples(4, start=7_200)
    samples = [eight_bit(base[0], long_line=1_500), eight_bit(base[1]),
               eight_bit(base[2], extra=b"Anhang:\n" + b"y" * 3_000 + b"\n" + b"z" * 70 * 1_500),  # spooled
               replace(base[3], raw=base[3].raw.replace(b"Message-ID: <", b"Message-ID: <" + b"m" * 990))]
    route_all(bed, config, samples)

    outcomes = sorted(row.outcome for row in rows(config, MessageRow))
    assert outcomes == ["routed"] * 4, [(r.outcome, r.reason) for r in rows(config, MessageRow)]
    forwards = [raw for rep in config.reps.values() for raw in bed.fetch_all(rep.email)]
    assert len(forwards) == 4
    copies = {parsed(copy)["Message-ID"]: copy for folder in shared_copies(bed, "sales@example.com").values()
              for copy in folder}
    for forward in forwards:
        original = decoded_original(forward)
        assert original == copies[parsed(original)["Message-ID"]]  # byte for byte, after decoding
    options = bed.smtp_mail_options
    assert sum("BODY=8BITMIME" in o for o in options) == 1  # only the plain 8-bit one needs it
