"""Spool files: written durably, forwards built around them byte for byte, cleaned up."""
from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailrouter.runtime.preflight import _check_spool
from mailrouter.commands.explain import explain_file
from mailrouter.act.forward import (WRAPPED, boundary_candidates, build_forward, embedded_encoding, embedded_size,
                                    wrapped_chunks)
from mailrouter.act.original import InMemory, Spooled
from mailrouter.intake.spool import CHUNK, Spool, scan, spooled_boundary
from mailrouter.store import OutboxRow, open_database
from mailrouter.act.templating import make_environment
from tests.factories import example_config
from tests.test_forward import DECISION, NOW, RAW_CRLF, TEMPLATES, make_inquiry, make_spec
from tests.test_spool_scan import nested

ENV = make_environment(TEMPLATES)


def spooled(tmp_path: Path, raw: bytes, chunk: int = 1000):
    spool = Spool(tmp_path / "spool")
    path = spool.path_for("sales", "INBOX", 7, 42)
    return spool.receive(path, (raw[i:i + chunk] for i in range(0, len(raw), chunk)))


@pytest.mark.parametrize("raw", [RAW_CRLF, RAW_CRLF.replace(b"\r\n", b"\n"), nested(),
                                 b"Subject: long\r\n\r\n" + "长".encode() * 400 + b"\r\n",
                                 RAW_CRLF + b"--=_mr_not-a-real-one\r\n"],
                         ids=["crlf", "lf", "nested", "binary", "with the prefix"])
def test_spooled_forward_is_byte_identical_to_build_forward(tmp_path: Path, raw: bytes) -> None:
    original = spooled(tmp_path, raw)
    assert original.path.read_bytes() == raw
    fields = Spooled(original).forward(make_inquiry(), DECISION, make_spec(), ENV, NOW)
    cte = embedded_encoding(fields["payload"])
    chunks = list(original.chunks())
    middle = b"".join(wrapped_chunks(chunks) if cte == WRAPPED else chunks)  # as the outbox streams it
    assert len(middle) == embedded_size(original.size, cte)
    assert fields["payload"] + middle + fields["tail"] == build_forward(raw, make_inquiry(), DECISION,
                                                                        make_spec(), ENV, NOW)
    assert fields["spool_path"] == str(original.path)
    assert InMemory(raw).forward(make_inquiry(), DECISION, make_spec(), ENV, NOW) == {
        "payload": build_forward(raw, make_inquiry(), DECISION, make_spec(), ENV, NOW)}


def test_a_boundary_found_in_the_spool_file_is_skipped_even_across_chunks(tmp_path: Path) -> None:
    sha = "ab" * 32
    alternative = b"--alternative part--"
    first, second = [c for c, _ in zip(boundary_candidates(bytes.fromhex(sha), _sha(alternative)), range(2))]
    clash = b"x" * (CHUNK - 10) + first.encode() + b"\r\n"  # straddles the first and second chunk
    path = tmp_path / "clash.eml"
    path.write_bytes(clash)
    original = replace(scan([clash], path), sha256=sha)
    assert original.has_boundary_prefix
    assert spooled_boundary(original, alternative) == second
    assert spooled_boundary(replace(original, has_boundary_prefix=False), alternative) == first


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_receive_writes_scans_and_leaves_no_partial_file(tmp_path: Path) -> None:
    raw = nested()
    original = spooled(tmp_path, raw, chunk=4096)
    assert original.size == len(raw) and original.reduced.startswith(b"From:")
    assert [p.name for p in (tmp_path / "spool").iterdir()] == [original.path.name]
    assert original.path.name.startswith("sales-") and original.path.name.endswith("-7-42.eml")
    assert ((tmp_path / "spool").stat().st_mode & 0o777) == 0o700  # customers' mail: ours only


def test_nothing_received_means_no_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.receive(spool.path_for("sales", "INBOX", 7, 42), iter([])) is None
    assert spool.files() == []


def test_a_failed_fetch_leaves_no_partial_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")

    def broken():
        yield b"From: a@b.c\r\n"
        raise ConnectionError("server went away")

    with pytest.raises(ConnectionError):
        spool.receive(spool.path_for("sales", "INBOX", 7, 42), broken())
    assert spool.files() == []


def test_files_no_pending_forward_needs_are_removed(tmp_path: Path) -> None:
    sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    spool = Spool(tmp_path / "spool")
    spool.directory.mkdir()
    kept, sent, stray, partial = (spool.directory / n for n in ("a.eml", "b.eml", "c.eml", "d.part"))
    for path in (kept, sent, stray, partial):
        path.write_bytes(b"x")
    now = datetime.now(timezone.utc)
    with sessions.begin() as session:
        for path, status in ((kept, "pending"), (sent, "sent")):
            session.add(OutboxRow(mailbox="sales", sender="s@x", recipient="r@x", payload=b"head", tail=b"tail",
                                  spool_path=str(path), status=status, next_attempt_at=now,
                                  deadline=now + timedelta(days=1)))
    assert spool.remove_unreferenced(sessions) == 3
    assert spool.files() == [kept]


def test_explain_reads_a_big_file_in_chunks_to_the_same_answer(tmp_path: Path) -> None:
    config = example_config()
    path = tmp_path / "big.eml"
    path.write_bytes(nested())
    in_memory = explain_file(config, path)
    assert "Attachments: Zeichnung 4711.pdf" in in_memory
    assert explain_file(replace(config, large_message_bytes=1), path) == in_memory


def test_start_up_check_names_a_spool_folder_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    config = replace(example_config(), spool_dir=tmp_path / "a-file" / "spool")
    assert "cannot write there" in _check_spool(config) and "daemon.spool_dir" in _check_spool(config)
    assert _check_spool(replace(config, spool_dir=tmp_path / "spool")) is None
    assert (tmp_path / "spool").is_dir() and list((tmp_path / "spool").iterdir()) == []


def test_state_files_are_private_whatever_the_umask(tmp_path):
    """Review (security): the database, spool files and the accepted log were created 0644."""
    import os

    from mailrouter.act.outbox import AcceptedLog
    from mailrouter.intake.spool import Spool
    from mailrouter.store import open_database

    old = os.umask(0o022)
    try:
        with open_database(f"sqlite:///{tmp_path / 'state.db'}")() as session:
            session.execute(__import__("sqlalchemy").text("select 1"))
        spooled = Spool(tmp_path / "spool").receive(tmp_path / "spool" / "m.eml", [b"Subject: x\r\n\r\nhi\r\n"])
        AcceptedLog(tmp_path / "spool" / "accepted-sales.log").add(7)
    finally:
        os.umask(old)
    assert spooled is not None
    for path in (tmp_path / "state.db", tmp_path / "spool" / "m.eml", tmp_path / "spool" / "accepted-sales.log"):
        assert path.stat().st_mode & 0o777 == 0o600, path
