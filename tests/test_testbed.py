"""The test bed itself: real Dovecot + SMTP, read back as a mail client would."""
from __future__ import annotations

import smtplib
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailrouter.testing.testbed import ResponseRewriter, TestBed, TestBedError
from tests.conftest import ADDRESSES, BedFactory

pytestmark = pytest.mark.integration


def message(subject: str, to: str = "sales@example.com") -> bytes:
    msg = EmailMessage()
    msg["From"] = "buyer@customer.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Please quote 1000 pcs.\n")
    return msg.as_bytes()


def test_deliver_over_lmtp_and_read_back(bed: TestBed) -> None:
    bed.deliver(["sales@example.com", "info@example.com"], message("RFQ 1"))
    for user in ("sales@example.com", "info@example.com"):
        [raw] = bed.fetch_all(user)
        assert b"Subject: RFQ 1" in raw
    assert bed.fetch_all("zhang@example.com") == []


def test_every_user_gets_sent_folder(bed: TestBed) -> None:
    assert set(bed.folders("li@example.com")) == {"INBOX", "Sent"}
    with bed.imap("li@example.com") as client:
        [(flags, _sep, _name)] = client.list_folders(pattern="Sent")
    assert rb"\Sent" in flags


def test_smtp_send_arrives_in_inbox(bed: TestBed) -> None:
    with smtplib.SMTP(bed.host, bed.smtp_port, timeout=10) as smtp:
        smtp.sendmail("router@example.com", ["zhang@example.com"], message("Fwd: RFQ"))
    [raw] = bed.fetch_all("zhang@example.com")
    assert b"Subject: Fwd: RFQ" in raw


def test_smtp_auth_with_bed_password(bed: TestBed) -> None:
    with smtplib.SMTP(bed.host, bed.smtp_port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login("sales@example.com", "wrong")
        smtp.login("sales@example.com", bed.password)
        smtp.sendmail("sales@example.com", ["li@example.com"], message("authed"))
    assert len(bed.fetch_all("li@example.com")) == 1


def test_smtp_unknown_recipient_is_rejected_with_550(bed: TestBed) -> None:
    with smtplib.SMTP(bed.host, bed.smtp_port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.sendmail("router@example.com", ["nobody@example.com"], message("x"))
    assert refused.value.recipients["nobody@example.com"][0] == 550


def test_smtp_fail_next_gives_451_then_success(bed: TestBed) -> None:
    bed.smtp_fail_next(1, code=451)
    with smtplib.SMTP(bed.host, bed.smtp_port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as failed:
            smtp.sendmail("router@example.com", ["wang@example.com"], message("try 1"))
        assert failed.value.smtp_code == 451
        smtp.sendmail("router@example.com", ["wang@example.com"], message("try 2"))
    [raw] = bed.fetch_all("wang@example.com")
    assert b"try 2" in raw


def test_imap_capability_option_replaces_the_list(make_bed: BedFactory) -> None:
    bed = make_bed(imap_capability="IMAP4rev1 IDLE NAMESPACE")
    with bed.imap("sales@example.com") as client:
        caps = set(client.capabilities())
    assert b"IDLE" in caps and b"MOVE" not in caps


def test_proxy_hides_capabilities_and_keywords(make_bed: BedFactory) -> None:
    bed = make_bed(proxy_hide={"MOVE", "UIDPLUS"}, proxy_no_keywords=True)
    assert bed.imap_port != bed.dovecot_imap_port
    bed.deliver("sales@example.com", message("through the proxy"))
    with bed.imap("sales@example.com") as client:
        caps = set(client.capabilities())
        info = client.select_folder("INBOX")
        body = client.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]
    assert b"IDLE" in caps and b"MOVE" not in caps and b"UIDPLUS" not in caps
    assert rb"\*" not in info[b"PERMANENTFLAGS"] and rb"\Seen" in info[b"PERMANENTFLAGS"]
    assert b"through the proxy" in body


def test_rewriter_leaves_other_lines_alone() -> None:
    rewriter = ResponseRewriter({"MOVE", "ID"}, no_keywords=True)
    assert rewriter.rewrite(b"* CAPABILITY IMAP4rev1 ID IDLE MOVE\r\n") == (
        b"* CAPABILITY IMAP4rev1 IDLE\r\n"
    )
    assert rewriter.rewrite(b"a1 OK [CAPABILITY IMAP4rev1 MOVE] Logged in\r\n") == (
        b"a1 OK [CAPABILITY IMAP4rev1] Logged in\r\n"
    )
    assert rewriter.rewrite(b"* OK [PERMANENTFLAGS (\\Seen \\*)] Ok\r\n") == (
        b"* OK [PERMANENTFLAGS (\\Seen)] Ok\r\n"
    )
    assert rewriter.rewrite(b"* 1 FETCH (BODY[] {20}\r\n") == b"* 1 FETCH (BODY[] {20}\r\n"


def test_literals_pass_through_the_proxy_untouched(make_bed: BedFactory) -> None:
    bed = make_bed(proxy_hide={"MOVE"})
    # A body line that looks like a response the proxy would rewrite.
    raw = message("literal") + b"* CAPABILITY IMAP4rev1 MOVE\r\n[CAPABILITY MOVE]\r\n"
    bed.deliver("sales@example.com", raw)
    [fetched] = bed.fetch_all("sales@example.com")
    assert fetched.endswith(b"* CAPABILITY IMAP4rev1 MOVE\r\n[CAPABILITY MOVE]\r\n")


def test_inbox_dot_namespace(make_bed: BedFactory) -> None:
    bed = make_bed(namespace_prefix="INBOX.")
    assert set(bed.folders("sales@example.com")) == {"INBOX", "INBOX.Sent"}


def test_long_root_path_still_starts(bed_root: Path) -> None:
    # Unix socket paths are capped at 108 bytes; the bed must cope with deep pytest paths.
    root = bed_root / ("x" * 60) / ("y" * 60)
    with TestBed(root, ADDRESSES[:1]) as bed:
        bed.deliver(ADDRESSES[0], message("deep"))
        assert len(bed.fetch_all(ADDRESSES[0])) == 1


def test_several_beds_at_once(make_bed: BedFactory) -> None:
    first, second = make_bed(), make_bed()
    first.deliver("sales@example.com", message("one"))
    assert len(first.fetch_all("sales@example.com")) == 1
    assert second.fetch_all("sales@example.com") == []


def test_untraversable_root_fails_with_advice(tmp_path: Path) -> None:
    # pytest's own temp dirs are 0700: the dovecot user could not reach the mail.
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    bed = TestBed(locked / "bed", ADDRESSES[:1])
    with pytest.raises(TestBedError, match="not enterable by the dovecot user"):
        bed.start()
    bed.stop()


def test_failed_start_reports_log_and_leaves_nothing_running(bed_root: Path) -> None:
    bed = TestBed(bed_root / "bad", ADDRESSES[:1], imap_capability="x\nno_such_setting = 1")
    with pytest.raises(TestBedError) as failed:
        bed.start()
    assert "apt-get install dovecot-imapd" in str(failed.value)
    assert "no_such_setting" in str(failed.value)  # the log tail names the problem
    assert bed.dovecot is None and bed._smtp is None


def test_stop_leaves_no_dovecot_process(make_bed: BedFactory) -> None:
    bed = make_bed()
    assert bed.dovecot is not None and bed.dovecot.process is not None
    pid = bed.dovecot.process.pid
    bed.stop()

    def group_left() -> str:
        return subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout

    # a SIGKILLed child is still listed until the kernel has torn it down (reparented, not yet
    # reaped): poll for the group to empty rather than read it once (flaked under two workers)
    deadline = time.monotonic() + 30
    while group_left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_left() == ""
