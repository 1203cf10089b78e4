"""Fixtures: a fresh Dovecot + SMTP test bed per test, on free loopback ports."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.store import close_database, open_database
from mailrouter.testing.postgres import INSTALL_HINT as PG_INSTALL_HINT
from mailrouter.testing.postgres import ThrowawayPostgres, postgres_available
from mailrouter.testing.testbed import INSTALL_HINT, TestBed

ADDRESSES = [
    f"{name}@example.com"
    for name in ("sales", "info", "america", "zhang", "li", "wang", "chen", "manager")
]

BedFactory = Callable[..., TestBed]


def dovecot_installed() -> bool:
    return shutil.which("dovecot") is not None or Path("/usr/sbin/dovecot").exists()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip integration tests only when Dovecot is missing (CI installs it, so never there)."""
    if dovecot_installed():
        return
    skip = pytest.mark.skip(reason=f"dovecot not found ({INSTALL_HINT})")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def bed_root(tmp_path: Path) -> Iterator[Path]:
    """A fresh 0755 dir in the system temp dir, for Dovecot's mail and sockets.

    Not tmp_path itself: the dovecot user must enter every parent, and each pytest session
    (another engineer's, or a parallel CI job) resets /tmp/pytest-of-<user> to 0700.
    Dovecot's logs are copied into tmp_path afterwards for post-mortems.
    """
    root = Path(tempfile.mkdtemp(prefix="mailrouter-bed-"))
    root.chmod(0o755)
    yield root
    for log in root.glob("**/dovecot.*"):
        if log.suffix in (".log", ".stderr", ".conf"):
            target = tmp_path / log.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, target)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_bed(bed_root: Path) -> Iterator[BedFactory]:
    """Start test beds with options (proxy, namespace...); all are stopped after the test."""
    started: list[TestBed] = []

    def make(extra_addresses: tuple[str, ...] = (), **options: Any) -> TestBed:
        root = bed_root / f"bed{len(started)}"
        bed = TestBed(root, [*ADDRESSES, *extra_addresses], **options)
        bed.start()
        started.append(bed)
        return bed

    yield make
    for bed in started:
        bed.stop()


@pytest.fixture
def bed(make_bed: BedFactory) -> TestBed:
    return make_bed()


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    """Tests that run the CLI install log handlers on pytest's capture streams; remove them
    afterwards, so later threads never log to a stream that is closed."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


# --- databases: every test that takes `database_url` runs on SQLite and on a real PostgreSQL ---

@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    """One throwaway PostgreSQL cluster per test session; each test gets its own database."""
    if not postgres_available():
        pytest.skip(f"PostgreSQL server not found ({PG_INSTALL_HINT})")
    server = ThrowawayPostgres().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database's URL on each store mailrouter supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mailrouter.db'}"
    server: ThrowawayPostgres = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """The session factory on a fresh database (both stores), disposed of afterwards."""
    yield open_database(database_url)
    close_database(database_url)
