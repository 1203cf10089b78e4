"""Issue 17 item 1: schema revisions with Alembic on both stores, the upgrade of a database made
before migrations, and `db copy` from SQLite to a real PostgreSQL with the same report figures."""
from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text

from mailrouter.commands import cli, db
from mailrouter.migrations import BASELINE, _config, database_note, head
from mailrouter.registry.models import CustomerRow
from mailrouter.reports.figures import Scope, compute_report
from mailrouter.store import Base, MessageRow, SchemaError, close_database, open_database
from tests.factories import copy_example
from tests.test_reports_fixture import NOW, PERIOD, make_db


def test_the_revisions_build_exactly_the_tables_of_store(database_url: str) -> None:
    """Running the chain of revisions on an empty database gives what store.py declares, so the
    shortcut for a new database (create the tables, stamp the head) is the same schema."""
    open_database  # noqa: B018  (registers the registry's tables on Base)
    from mailrouter.registry import models  # noqa: F401

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            command.upgrade(_config(connection), "head")
            connection.commit()
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            assert MigrationContext.configure(connection).get_current_revision() == head()
        assert differences == []
    finally:
        engine.dispose()


def _pre_migration_sqlite(path: Path) -> str:
    """A database as the release before migrations left it: the baseline's tables (built by the
    baseline revision, so later revisions have something to do), no alembic_version, an inquiry
    and a customer in it, written with that release's columns only."""
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    with engine.connect() as connection:
        command.upgrade(_config(connection), BASELINE)
        connection.execute(text(
            "INSERT INTO messages (mailbox, source, uidvalidity, uid, message_id, raw_sha256, content_key, size, "
            "state, outcome, reason, rep, folder, keywords, sender, subject, products, received_at, decided_at, "
            "file_attempts) VALUES ('sales', 'INBOX', 1, 70000, '<a@b>', :sha, :key, 0, 'filed', 'routed', '', "
            "'zhang', 'Routed/zhang', '', 'buyer@acme.de', 'valves', '', '2026-11-30 00:00:00', "
            "'2026-11-30 00:00:00', 0)"), {"sha": "0" * 64, "key": "1" * 64})
        connection.execute(text(
            "INSERT INTO customers (id, company, company_key, contact_name, status, status_reason, source, "
            "first_seen, last_contact, owner_since, owner) VALUES (1, 'Acme GmbH', 'acme', '', 'active', '', '', "
            "'2026-11-30 00:00:00', '2026-11-30 00:00:00', '2026-11-30 00:00:00', 'zhang')"))
        connection.execute(text("INSERT INTO customer_emails (customer_id, email) VALUES (1, 'buyer@acme.de')"))
        connection.execute(text("DROP TABLE alembic_version"))
        connection.commit()
    engine.dispose()
    path.chmod(0o600)
    return url


def test_a_database_from_before_migrations_is_upgraded_in_place_with_a_copy_kept(tmp_path: Path) -> None:
    url = _pre_migration_sqlite(tmp_path / "mailrouter.db")
    with pytest.raises(SchemaError, match="run `mailrouter db upgrade`"):
        open_database(url)  # a report never reads a schema it was not written for
    assert database_note(url) == (None, f"schema at a release before migrations, this release needs {head()}: "
                                  "`mailrouter run` upgrades it at start (or run `mailrouter db upgrade`)")

    sessions = open_database(url, migrate=True)
    with sessions() as session:
        assert session.scalar(select(MessageRow.subject)) == "valves"
        assert session.scalar(select(CustomerRow.company)) == "Acme GmbH"
        assert session.scalar(text("SELECT version_num FROM alembic_version")) == head()
    backup = tmp_path / f"mailrouter.db.before-{head()}"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    with sqlite3.connect(backup) as old:  # the copy is the database as it was: no revision stamp
        assert old.execute("SELECT subject FROM messages").fetchall() == [("valves",)]
        assert not old.execute("SELECT name FROM sqlite_master WHERE name = 'alembic_version'").fetchall()
    assert open_database(url) is not None  # current now: every command opens it


def test_an_older_pre_migration_database_gets_the_columns_added_before_the_baseline(tmp_path: Path) -> None:
    """Moved from test_spool.py: a database from before spooling (no outbox.tail, spool_path)
    and before migrations gets them, and then every later revision."""
    url = _pre_migration_sqlite(tmp_path / "old.db")
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("ALTER TABLE outbox DROP COLUMN tail")
        conn.execute("ALTER TABLE outbox DROP COLUMN spool_path")
    sessions = open_database(url, migrate=True)
    columns = {c["name"] for c in inspect(sessions.kw["bind"]).get_columns("outbox")}
    assert {"tail", "spool_path"} <= columns
    with sessions() as session:
        assert session.scalar(text("SELECT version_num FROM alembic_version")) == head()


def test_a_revision_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    open_database(url)
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    for migrate in (False, True):
        with pytest.raises(SchemaError, match="revision 9999, which this mailrouter .* does not know"):
            open_database(url, migrate=migrate)
    error, _note = database_note(url)
    assert error is not None and "newer release" in error


def test_db_commands_print_the_revision_and_upgrade(tmp_path: Path, capsys) -> None:
    config = copy_example(tmp_path)
    database = tmp_path / "state.db"
    text_ = config.read_text(encoding="utf-8").replace("[daemon]", f'[daemon]\ndatabase = "sqlite:///{database}"', 1)
    config.write_text(text_, encoding="utf-8")
    _pre_migration_sqlite(database)

    assert cli.main(["-c", str(config), "status"]) == 2
    assert "run `mailrouter db upgrade`" in capsys.readouterr().err
    assert cli.main(["-c", str(config), "db", "current"]) == 0
    assert "a release before migrations" in capsys.readouterr().out
    assert cli.main(["-c", str(config), "db", "upgrade"]) == 0
    assert f"schema at {head()} (current)" in capsys.readouterr().out
    assert cli.main(["-c", str(config), "status"]) == 0


def test_baseline_is_the_first_revision() -> None:
    assert BASELINE == "0001"
    with pytest.raises(NotImplementedError):  # below the baseline nothing is dropped
        from importlib import import_module
        import_module("mailrouter.migrations.versions.0001_baseline").downgrade()


def test_db_copy_to_postgresql_gives_the_same_report(tmp_path: Path, postgres, capsys) -> None:
    """Done-when (c): a SQLite database of the release before migrations, upgraded, then copied
    to a real PostgreSQL: every row arrives, ids continue, and the report's figures are equal."""
    source = _pre_migration_sqlite(tmp_path / "old.db")
    sessions = open_database(source, migrate=True)
    make_db(sessions)  # routed, replied, reassigned, undeliverable, pooled, collisions
    target = postgres.new_database()
    try:
        copied = {c.table: c.rows for c in db.copy(source, target)}
        assert copied["assignments"] > 20 and copied["customers"] == 1 and copied["customer_emails"] == 1
        target_sessions = open_database(target)
        with sessions() as a, target_sessions() as b:
            for table in Base.metadata.sorted_tables:
                assert a.scalar(select(func.count()).select_from(table)) == \
                    b.scalar(select(func.count()).select_from(table)) == copied[table.name]
            assert compute_report(a, Scope(PERIOD), NOW) == compute_report(b, Scope(PERIOD), NOW)
        with target_sessions.begin() as b:  # the sequences go on after the copied ids
            row = MessageRow(mailbox="sales", source="INBOX", uidvalidity=1, uid=99999, message_id="<n@b>",
                             sender="x@y.z", subject="new", outcome="routed", state="filed", raw_sha256="2" * 64,
                             content_key="3" * 64, received_at=NOW, decided_at=NOW, folder="Routed/zhang")
            b.add(row)
            b.flush()
            assert row.id > max(b.scalars(select(MessageRow.id).where(MessageRow.uid != 99999)))
        with pytest.raises(db.CopyRefused, match="already holds rows in"):
            db.copy(source, target)  # never merged into a database that has data
    finally:
        close_database(target)
