"""Big messages go through a spool file instead of memory.

A message over `daemon.large_message_bytes` is fetched from IMAP in chunks straight into a file
under the spool directory, and scanned on the way (`MessageScanner`): its sha256, content key,
transfer encoding and a reduced copy for parsing (headers and text, see parse.stream). The
forward is stored as the bytes before and after the original (act/original.py); the outbox
streams head, file and tail into SMTP's DATA. The file is fsynced before the transaction that
refers to it commits, removed once its forward is sent or has failed for good, and a file that
no pending forward refers to is removed at start-up (a crash between spool and commit).
"""
from __future__ import annotations

import hashlib
import logging
import os
from typing import BinaryIO
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.intake.fingerprint import ContentKeyHasher
from mailrouter.act.forward import BOUNDARY_PREFIX, TransferEncodingTracker, boundary_candidates
from mailrouter.model import Attachment
from mailrouter.parse.stream import MimeReducer
from mailrouter.store import FILED, MessageRow, OutboxRow

log = logging.getLogger("mailrouter.spool")

CHUNK = 1 << 20  # bytes per IMAP FETCH (a round trip each) and per read of a spool file
SEND_CHUNK = 256 << 10  # bytes per write to SMTP: each is copied a few times on its way out
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class SpooledMessage:
    """A message in a spool file, and what the pipeline needs to know of it without reading it."""

    path: Path
    size: int
    sha256: str
    content_key: str
    transfer_encoding: str  # as forward.raw_transfer_encoding
    reduced: bytes  # headers and text parts: what parse_message reads
    attachments: tuple[Attachment, ...]  # with their real sizes
    has_boundary_prefix: bool  # contains "=_mr_": boundaries must be checked against the file
    problem: str = ""  # the scan could not read its MIME structure: quarantined with this reason

    def chunks(self) -> Iterator[bytes]:
        """The original's bytes; FileNotFoundError if the file is gone."""
        return file_chunks(self.path)


def file_name_part(text: str) -> str:
    """`text` (a mailbox name) made safe to use in a file name."""
    return _UNSAFE.sub("_", text)


def private_file(path: Path, flags: int) -> BinaryIO:
    """Open `path` for writing, created 0600 whatever the umask: spooled mail is customers' mail."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600), "wb", buffering=0)


def file_chunks(path: Path, size: int = CHUNK) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


class MessageScanner:
    """Everything the pipeline needs from a message, read once in chunks of any size."""

    def __init__(self) -> None:
        self.size = 0
        self._sha = hashlib.sha256()
        self._key = ContentKeyHasher()
        self._cte = TransferEncodingTracker()
        self._reducer = MimeReducer()
        self._tail = b""  # the last bytes of the previous chunk, for a prefix split across chunks
        self._prefix_seen = False

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._sha.update(chunk)
        self._key.update(chunk)
        self._cte.update(chunk)
        self._reducer.feed(chunk)
        if not self._prefix_seen:
            self._prefix_seen = BOUNDARY_PREFIX in self._tail + chunk[:len(BOUNDARY_PREFIX)] \
                or BOUNDARY_PREFIX in chunk
            self._tail = chunk[-(len(BOUNDARY_PREFIX) - 1):]

    def result(self, path: Path) -> SpooledMessage:
        """Call once, after the last chunk."""
        reduced = self._reducer.close()
        return SpooledMessage(
            path=path, size=self.size, sha256=self._sha.hexdigest(), content_key=self._key.hexdigest(),
            transfer_encoding=self._cte.result(), reduced=reduced.message, attachments=reduced.attachments,
            has_boundary_prefix=self._prefix_seen, problem=reduced.problem)


def scan(chunks: Iterable[bytes], path: Path = Path("-")) -> SpooledMessage:
    """A message's facts from its chunks, without a file (tests, `explain`)."""
    scanner = MessageScanner()
    for chunk in chunks:
        scanner.feed(chunk)
    return scanner.result(path)


def spooled_boundary(original: SpooledMessage, alternative: bytes) -> str:
    """The boundary `forward.choose_boundary(raw, alternative)` picks, found without `raw` in
    memory: only an original containing the prefix is searched, in its file."""
    digests = (bytes.fromhex(original.sha256), hashlib.sha256(alternative).digest())
    for candidate in boundary_candidates(*digests):
        mark = candidate.encode()
        if mark in alternative or (original.has_boundary_prefix and _file_contains(original, mark)):
            continue
        return candidate
    raise AssertionError("unreachable")


def _file_contains(original: SpooledMessage, mark: bytes) -> bool:
    tail = b""
    for chunk in original.chunks():
        if mark in tail + chunk[:len(mark)] or mark in chunk:
            return True
        tail = chunk[-(len(mark) - 1):]
    return False


class Spool:
    """The spool directory: one file per big message between its fetch and its forward."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, mailbox: str, folder: str, uidvalidity: int, uid: int) -> Path:
        """One name per message location, so a message fetched again replaces its own file."""
        where = hashlib.sha256(folder.encode()).hexdigest()[:8]
        return self.directory / f"{file_name_part(mailbox)}-{where}-{uidvalidity}-{uid}.eml"

    def receive(self, path: Path, chunks: Iterable[bytes]) -> SpooledMessage | None:
        """Write the chunks to `path`, scanned on the way, and make them durable; None (and no
        file) when no bytes came: the message was expunged meanwhile."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        scanner = MessageScanner()
        try:
            with private_file(partial, os.O_TRUNC) as fh:
                for chunk in chunks:
                    scanner.feed(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            if scanner.size == 0:
                partial.unlink()
                return None
            os.replace(partial, path)
            _fsync_directory(self.directory)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return scanner.result(path)

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.suffix in (".eml", ".part"))

    def remove_unreferenced(self, sessions: sessionmaker[Session]) -> int:
        """Remove the files no pending forward refers to (left by a crash before the database
        recorded them, or after the forward was done); the mail itself is still in IMAP."""
        with sessions() as session:
            wanted = set(session.scalars(select(OutboxRow.spool_path).where(
                OutboxRow.status == "pending", OutboxRow.spool_path.is_not(None))))
        removed = 0
        for path in self.files():
            if str(path) not in wanted:
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.info("removed %d spool file(s) no pending forward needs", removed)
        return removed


def is_referenced(sessions: sessionmaker[Session], path: Path) -> bool:
    """Does a pending forward stream this file?"""
    with sessions() as session:
        return session.scalar(select(OutboxRow.id).where(
            OutboxRow.spool_path == str(path), OutboxRow.status == "pending").limit(1)) is not None


def missing_spool_files(sessions: sessionmaker[Session], mailbox: str,
                        uidvalidity: int) -> list[tuple[str, int, str]]:
    """(path, INBOX uid, sha256) of pending forwards whose spool file is missing and whose
    shared copy is still in INBOX under this UIDVALIDITY: they can be fetched again."""
    with sessions() as session:
        rows = session.execute(
            select(OutboxRow.spool_path, MessageRow.uid, MessageRow.raw_sha256)
            .join(MessageRow, MessageRow.id == OutboxRow.message)
            .where(OutboxRow.mailbox == mailbox, OutboxRow.status == "pending",
                   OutboxRow.spool_path.is_not(None), MessageRow.source == "INBOX",
                   MessageRow.state != FILED, MessageRow.uidvalidity == uidvalidity)).all()
    return [(path, uid, sha) for path, uid, sha in rows if path is not None and not Path(path).exists()]


def remove_file(path: str | None) -> None:
    """Our own copy of a message whose forward is done (sent or failed for good)."""
    if path:
        Path(path).unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    """The rename itself must survive a power cut, not only the file's bytes."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
