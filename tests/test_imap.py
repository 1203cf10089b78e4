"""The IMAP adapter against a real Dovecot (and the capability-hiding proxy), no mocks."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import imapclient
import pytest

from mailrouter.intake.imap import (
    ImapAuthError,
    ImapConnectionLost,
    ImapSettings,
    ImapTlsError,
    Mailbox,
    parse_uid_set,
)
from mailrouter.intake.wake import Waker
from mailrouter.testing.testbed import TestBed, free_port
from tests.conftest import BedFactory

pytestmark = pytest.mark.integration

SALES = "sales@example.com"
GUARD = 30.0  # generous: only there so a broken test fails instead of hanging


def settings(bed: TestBed, **overrides: object) -> ImapSettings:
    values: dict[str, object] = dict(
        host=bed.host, port=bed.imap_port, tls="none", user=SALES, password=bed.password,
        timeout=GUARD,
    )
    values.update(overrides)
    return ImapSettings(**values)  # type: ignore[arg-type]


def message(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "buyer@customer.test"
    msg["To"] = SALES
    msg["Subject"] = f"RFQ {n}"
    msg["Message-ID"] = f"<rfq{n}@customer.test>"
    msg.set_content(f"Inquiry number {n}\n")
    return msg.as_bytes()


MailboxFactory = Callable[..., Mailbox]


@pytest.fixture
def open_mailbox() -> Iterator[MailboxFactory]:
    """connect + select_inbox, logged out after the test."""
    opened: list[Mailbox] = []

    def connect(bed: TestBed, **overrides: object) -> Mailbox:
        mailbox = Mailbox.connect(settings(bed, **overrides))
        opened.append(mailbox)
        mailbox.select_inbox()
        return mailbox

    yield connect
    for mailbox in opened:
        mailbox.logout()


def flags_in(bed: TestBed, folder: str) -> list[set[bytes]]:
    """Flags of every message in a server-side folder (\\Recent aside), in UID order."""
    with bed.imap(SALES) as client:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        found = sorted(client.fetch(uids, ["FLAGS"]).items())
    return [set(data[b"FLAGS"]) - {rb"\Recent"} for _uid, data in found]


def test_connect_sends_id_and_reports_capabilities(
    bed: TestBed, open_mailbox: MailboxFactory
) -> None:
    mailbox = open_mailbox(bed)
    assert mailbox.has_move and mailbox.has_uidplus and mailbox.has_idle
    assert mailbox.custom_keywords
    assert "ID sent: name=mailrouter" in (bed.root / "dovecot.log").read_text()


def test_password_never_logged(bed: TestBed, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with Mailbox.connect(settings(bed)) as mailbox:
        mailbox.select_inbox()
    with pytest.raises(ImapAuthError) as refused:
        Mailbox.connect(settings(bed, password="wrong-" + bed.password))
    assert bed.password not in caplog.text + str(refused.value)
    assert bed.password not in repr(settings(bed))


def test_connection_errors_are_typed(bed: TestBed) -> None:
    with pytest.raises(ImapTlsError, match="unencrypted"):
        Mailbox.connect(settings(bed, host="mail.example.com"))
    with pytest.raises(ImapTlsError):  # TLS handshake against a plaintext port
        Mailbox.connect(settings(bed, tls="implicit"))
    with pytest.raises(ImapTlsError, match="STARTTLS"):  # the bed runs with ssl = no
        Mailbox.connect(settings(bed, tls="starttls"))
    with pytest.raises(ValueError):
        settings(bed, tls="ssl")
    with pytest.raises(ImapConnectionLost):  # nothing listens there
        Mailbox.connect(settings(bed, port=free_port(), timeout=2))
    with pytest.raises(ImapConnectionLost):  # not an IMAP server
        Mailbox.connect(settings(bed, port=bed.smtp_port, timeout=2))


def test_fetch_returns_raw_bytes_in_batches_without_setting_seen(
    bed: TestBed, open_mailbox: MailboxFactory
) -> None:
    for n in range(5):
        bed.deliver(SALES, message(n))
    mailbox = open_mailbox(bed)
    uids = mailbox.unprocessed_uids()
    fetched = list(mailbox.fetch(uids, batch=2))
    assert [uid for uid, _ in fetched] == uids
    assert [raw for _, raw in fetched] == bed.fetch_all(SALES)
    assert all(rb"\Seen" not in flags for flags in flags_in(bed, "INBOX"))


def test_file_with_move(bed: TestBed, open_mailbox: MailboxFactory) -> None:
    bed.deliver(SALES, message(1))
    bed.deliver(SALES, message(2))
    mailbox = open_mailbox(bed)
    mailbox.ensure_folders(["Routed/zhang"])
    mailbox.file(mailbox.unprocessed_uids(), "Routed/zhang", keywords=["$Routed"])
    assert bed.fetch_all(SALES) == []
    assert flags_in(bed, "Routed/zhang") == [{rb"\Seen", b"$Routed"}] * 2


def add_foreign_deleted(bed: TestBed) -> None:
    """A message someone else flagged \\Deleted: filing must never expunge it."""
    bed.deliver(SALES, message(99))
    with bed.imap(SALES) as client:
        client.select_folder("INBOX")
        client.add_flags(client.search(["ALL"]), [rb"\Deleted"])


def test_file_without_move_copies_and_expunges_exactly_those(
    make_bed: BedFactory, open_mailbox: MailboxFactory
) -> None:
    bed = make_bed(proxy_hide={"MOVE"})
    add_foreign_deleted(bed)
    bed.deliver(SALES, message(1))
    mailbox = open_mailbox(bed)
    assert not mailbox.has_move and mailbox.has_uidplus
    mailbox.ensure_folders(["Routed/li"])
    mailbox.file(mailbox.unprocessed_uids(), "Routed/li", keywords=["$Routed"])
    assert mailbox.unprocessed_uids() == []
    assert flags_in(bed, "INBOX") == [{rb"\Deleted"}]  # the foreign one survived
    assert flags_in(bed, "Routed/li") == [{rb"\Seen", b"$Routed"}]


def test_file_without_move_or_uidplus_never_expunges(
    make_bed: BedFactory, open_mailbox: MailboxFactory
) -> None:
    bed = make_bed(proxy_hide={"MOVE", "UIDPLUS"}, proxy_no_keywords=True)
    add_foreign_deleted(bed)
    bed.deliver(SALES, message(1))
    mailbox = open_mailbox(bed)
    assert not (mailbox.has_move or mailbox.has_uidplus or mailbox.custom_keywords)
    [uid] = mailbox.unprocessed_uids()
    mailbox.ensure_folders(["Routed/wang"])
    mailbox.file([uid], "Routed/wang", keywords=["$Routed"])
    assert mailbox.unprocessed_uids() == []
    assert len(flags_in(bed, "INBOX")) == 2  # nothing expunged, not even the foreign one
    assert flags_in(bed, "INBOX")[1] == {rb"\Seen", rb"\Deleted"}
    assert flags_in(bed, "Routed/wang") == [{rb"\Seen"}]  # keyword skipped, still filed


def test_invalid_keyword_is_refused(bed: TestBed, open_mailbox: MailboxFactory) -> None:
    bed.deliver(SALES, message(1))
    mailbox = open_mailbox(bed)
    with pytest.raises(ValueError):
        mailbox.file(mailbox.unprocessed_uids(), "Sent", keywords=["two words"])
    assert len(mailbox.unprocessed_uids()) == 1


def test_non_ascii_folders_round_trip(bed: TestBed, open_mailbox: MailboxFactory) -> None:
    bed.deliver(SALES, message(1))
    mailbox = open_mailbox(bed)
    mailbox.ensure_folders(["分配/张伟", "Routed/zhang"])
    mailbox.ensure_folders(["分配/张伟"])  # idempotent
    mailbox.file(mailbox.unprocessed_uids(), "分配/张伟")
    client = imapclient.IMAPClient(bed.host, bed.imap_port, ssl=False, timeout=GUARD)
    with client:
        client.login(SALES, bed.password)
        names = {name for _f, _s, name in client.list_folders()}
        subscribed = {name for _f, _s, name in client.list_sub_folders()}
        assert client.select_folder("分配/张伟")[b"EXISTS"] == 1
    assert {"分配", "分配/张伟", "Routed", "Routed/zhang"} <= names
    assert {"分配/张伟", "Routed/zhang"} <= subscribed


def test_inbox_dot_namespace_translation(
    make_bed: BedFactory, open_mailbox: MailboxFactory
) -> None:
    bed = make_bed(namespace_prefix="INBOX.")
    bed.deliver(SALES, message(1))
    mailbox = open_mailbox(bed)
    mailbox.ensure_folders(["Routed/zhang"])
    mailbox.file(mailbox.unprocessed_uids(), "Routed/zhang")
    assert "INBOX.Routed.zhang" in bed.folders(SALES)
    assert len(bed.fetch_all(SALES, "INBOX.Routed.zhang")) == 1
    with pytest.raises(ValueError):  # "." would silently create a level on this server
        mailbox.ensure_folders(["Dr. Wang"])


def deliver_soon(bed: TestBed, delay: float = 0.3) -> threading.Timer:
    timer = threading.Timer(delay, bed.deliver, args=(SALES, message(7)))
    timer.start()
    return timer


def test_wait_for_news_with_idle(bed: TestBed, open_mailbox: MailboxFactory) -> None:
    mailbox = open_mailbox(bed)
    assert mailbox.wait_for_news(timeout=0.2) is False
    timer = deliver_soon(bed)
    assert mailbox.wait_for_news(timeout=GUARD) is True
    timer.join()
    assert len(mailbox.unprocessed_uids()) == 1
    mailbox.noop()  # the session is usable after IDLE


def test_wait_for_news_by_polling(make_bed: BedFactory, open_mailbox: MailboxFactory) -> None:
    bed = make_bed(proxy_hide={"IDLE"})
    mailbox = open_mailbox(bed, poll_interval=0.1)
    assert not mailbox.has_idle
    assert mailbox.wait_for_news(timeout=0.2) is False
    timer = deliver_soon(bed)
    assert mailbox.wait_for_news(timeout=GUARD) is True
    timer.join()


def _wait_in_thread(mailbox: Mailbox, waker: Waker) -> tuple[threading.Thread, list[bool]]:
    """wait_for_news for an hour in a thread (a daemon one: a test that fails must not hang)."""
    answers: list[bool] = []
    waiting = threading.Thread(target=lambda: answers.append(mailbox.wait_for_news(3600, waker)), daemon=True)
    waiting.start()
    return waiting, answers


def test_a_poke_ends_an_idle_wait_at_once_and_idle_goes_on(bed: TestBed, open_mailbox: MailboxFactory) -> None:
    mailbox, waker = open_mailbox(bed), Waker()
    assert mailbox.wait_for_news(timeout=0.2, waker=waker) is False  # IDLE is open now
    waiting, answers = _wait_in_thread(mailbox, waker)
    waker.poke()
    waiting.join(GUARD)
    assert not waiting.is_alive(), "the poke did not end the IDLE wait"
    assert answers == [False]
    timer = deliver_soon(bed)  # the session still idles and still hears of new mail
    assert mailbox.wait_for_news(timeout=GUARD, waker=waker) is True
    timer.join()
    assert len(mailbox.unprocessed_uids()) == 1


def test_a_poke_ends_a_polling_wait_at_once(make_bed: BedFactory, open_mailbox: MailboxFactory) -> None:
    bed = make_bed(proxy_hide={"IDLE"})
    mailbox, waker = open_mailbox(bed, poll_interval=3600), Waker()
    waiting, answers = _wait_in_thread(mailbox, waker)
    waker.poke()
    waiting.join(GUARD)
    assert not waiting.is_alive(), "the poke did not end the polling wait"
    assert answers == [False]


def test_a_session_waiting_for_the_slot_rings_its_holder(bed: TestBed) -> None:
    from mailrouter.intake.imap import CONNECTION_LIMITS

    CONNECTION_LIMITS.limit = 1
    holder_waker = Waker()
    try:
        holder = Mailbox.connect(settings(bed), waker=holder_waker)
        assert not holder.slot_wanted()
        second: list[Mailbox] = []
        queued = threading.Thread(target=lambda: second.append(Mailbox.connect(settings(bed))), daemon=True)
        queued.start()
        assert holder_waker.wait(GUARD), "the holder's waker was not rung"
        assert holder.slot_wanted()
        holder.logout()  # what a rung worker does after its round
        queued.join(GUARD)
        assert second, "the waiting session did not get the slot"
        second[0].logout()
    finally:
        CONNECTION_LIMITS.limit = None


def test_a_stop_ends_the_wait_for_a_slot(bed: TestBed) -> None:
    """50 mailboxes on 8 slots: at a stop, the 42 waiting must not each log in for a last turn."""
    from mailrouter.intake.imap import CONNECTION_LIMITS, SlotsBusy

    CONNECTION_LIMITS.limit = 1
    stop = threading.Event()
    try:
        holder = Mailbox.connect(settings(bed))
        failures: list[Exception] = []

        def wait_for_slot() -> None:
            try:
                Mailbox.connect(settings(bed, timeout=3600), stop=stop).logout()
            except SlotsBusy as exc:
                failures.append(exc)

        queued = threading.Thread(target=wait_for_slot, daemon=True)
        queued.start()
        wait_until(holder.slot_wanted)
        stop.set()
        CONNECTION_LIMITS.wake_waiters()  # what the daemon's stop event does
        queued.join(GUARD)
        assert not queued.is_alive(), "the stop did not end the wait for a slot"
        assert len(failures) == 1 and "stopping" in str(failures[0])
        holder.logout()
    finally:
        CONNECTION_LIMITS.limit = None


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_dropped_connection_during_idle_raises_connection_lost(
    make_bed: BedFactory, open_mailbox: MailboxFactory
) -> None:
    bed = make_bed(proxy_hide={"ACL"})  # any proxy: we cut the connection there
    mailbox = open_mailbox(bed)
    assert bed._proxy is not None
    threading.Timer(0.3, bed._proxy.stop).start()
    with pytest.raises(ImapConnectionLost):
        mailbox.wait_for_news(timeout=GUARD)


def test_parse_uid_set() -> None:
    assert parse_uid_set(b"1:3,7,10:9") == {1, 2, 3, 7, 9, 10}


def test_connection_limit_per_server(bed: TestBed) -> None:
    from mailrouter.intake.imap import CONNECTION_LIMITS, ImapThrottled

    CONNECTION_LIMITS.limit = 1
    try:
        first = Mailbox.connect(settings(bed))
        with pytest.raises(ImapThrottled, match="already 1 connections"):
            Mailbox.connect(settings(bed, timeout=0.5))
        first.logout()
        first.logout()  # a second logout must not free a slot twice
        second = Mailbox.connect(settings(bed))  # the slot is free again
        second.logout()
    finally:
        CONNECTION_LIMITS.limit = None


def test_throttling_answers_are_told_apart_and_backed_off_for_minutes() -> None:
    import imapclient.exceptions as imap_exc

    from mailrouter.intake.imap import Backoff, ImapCommandError, ImapThrottled, _translated

    with pytest.raises(ImapThrottled):
        with _translated("UID FETCH"):
            raise imap_exc.IMAPClientError("NO [THROTTLED] Request is throttled. Suggested Backoff Time: 1000 ms")
    with pytest.raises(ImapThrottled):
        with _translated("LOGIN"):
            raise imap_exc.LoginError("NO [UNAVAILABLE] Too many simultaneous connections")
    with pytest.raises(ImapCommandError) as info:
        with _translated("SELECT"):
            raise imap_exc.IMAPClientError("NO Mailbox doesn't exist: Routed")
    assert not isinstance(info.value, ImapThrottled)
    backoff = Backoff()
    assert [backoff.failed() for _ in range(11)][-3:] == [256.0, 300.0, 300.0]
    assert [backoff.throttled() for _ in range(6)] == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0]


def test_a_new_limit_counts_from_the_slots_held_not_from_an_earlier_limit() -> None:
    """A daemon started in a process that ran one before (the test workers) gets its own
    limit on a server the other had used: before, a server first seen under limit 1 kept one
    free slot under limit 8, and a second session waited out its timeout (SlotsBusy)."""
    from mailrouter.intake.imap import ConnectionLimits, SlotsBusy

    limits = ConnectionLimits()
    limits.limit = 1
    limits.release(limits.acquire("127.0.0.1", 143, timeout=1))
    limits.limit = 2
    first = limits.acquire("127.0.0.1", 143, timeout=1)
    second = limits.acquire("127.0.0.1", 143, timeout=1)
    with pytest.raises(SlotsBusy):
        limits.acquire("127.0.0.1", 143, timeout=0.05)  # the limit still holds
    limits.release(first)
    limits.release(second)
