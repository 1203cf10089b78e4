"""Schema revisions with Alembic, run from code: no alembic.ini, same engine as the daemon.

What a database can be when mailrouter opens it:
- new (no mailrouter table): the tables are created from store.py and stamped at the head
  revision, which a test keeps equal to the chain of revisions;
- at the head revision: nothing to do;
- behind, or from a release before Alembic (tables but no `alembic_version`): `mailrouter run`
  and `mailrouter db upgrade` bring it up to date, after a copy of a SQLite file is kept beside
  it; every other command refuses with what to run, so a report never reads a half-old schema;
- at a revision this release does not know (a newer release wrote it): refused.
"""
from __future__ import annotations

import logging
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from mailrouter.store import SchemaError

log = logging.getLogger("mailrouter.store")

BASELINE = "0001"  # the schema of the last release without Alembic (4 Dec 2026)
HERE = Path(__file__).resolve().parent


# What `check` and `db` say about a database, per language (issue 15 item 6); the log line and
# SchemaError stay English like every log line.
WORDS = {
    "en": {"at_head": "schema at {head} (current)", "fresh": "new database",
           "behind": "schema at {current}, this release needs {head}", "unstamped": "a release before migrations",
           "new_file": "new database: created at the first start",
           "newer": "{state}: a newer release upgraded it; run that release or restore the copy kept before "
                    "its upgrade",
           "will_upgrade": "{state}: `mailrouter run` upgrades it at start (or run `mailrouter db upgrade`)"},
    "zh": {"at_head": "数据库结构版本 {head}（最新）", "fresh": "新数据库",
           "behind": "数据库结构版本 {current}，本版本需要 {head}", "unstamped": "引入迁移之前的版本",
           "new_file": "新数据库：首次启动时创建",
           "newer": "{state}：由更新的版本升级过；请运行那个版本，或恢复升级前保留的副本",
           "will_upgrade": "{state}：`mailrouter run` 启动时会升级（或运行 `mailrouter db upgrade`）"},
}


def _words(language: str) -> dict[str, str]:
    return WORDS["zh" if language == "zh" else "en"]


@dataclass(frozen=True)
class SchemaState:
    current: str | None   # the stamped revision; None when there is no alembic_version
    head: str
    has_tables: bool      # any of mailrouter's tables exists
    known: bool           # `current` is a revision of this release

    @property
    def fresh(self) -> bool:
        return self.current is None and not self.has_tables

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def describe(self, language: str = "en") -> str:
        w = _words(language)
        if self.up_to_date:
            return w["at_head"].format(head=self.head)
        if self.fresh:
            return w["fresh"]
        return w["behind"].format(current=self.current or w["unstamped"], head=self.head)


def _config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head() or BASELINE


def _known() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


def schema_state(connection: Connection) -> SchemaState:
    from mailrouter.store import Base

    current = MigrationContext.configure(connection).get_current_revision()
    tables = set(inspect(connection).get_table_names())
    return SchemaState(current=current, head=head(), has_tables=bool(tables & set(Base.metadata.tables)),
                       known=current is None or current in _known())


def database_note(url: str, language: str = "en") -> tuple[str | None, str]:
    """For `check`: (error or None, what the daemon will do with the database at `url`).
    Reads only; a SQLite file that does not exist yet is not created."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not Path(parsed.database).exists():
        return None, _words(language)["new_file"]
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            state = schema_state(connection)
    except Exception as exc:  # any driver error is the finding itself: unreachable, refused, corrupt
        return f"{type(exc).__name__}: {exc}".splitlines()[0], ""
    finally:
        engine.dispose()
    if not state.known:
        return _words(language)["newer"].format(state=state.describe(language)), ""
    if state.up_to_date or state.fresh:
        return None, state.describe(language)
    return None, _words(language)["will_upgrade"].format(state=state.describe(language))


def ensure_schema(engine: Engine, migrate: bool) -> SchemaState:
    """Bring the database to the head revision or refuse; returns the state found.
    `migrate` False: only a new database is created; anything older raises SchemaError."""
    with engine.connect() as connection:
        _serialise(connection)
        state = schema_state(connection)
        if state.up_to_date:
            return state
        if not state.known:
            raise SchemaError(f"{_where(engine)}: the database is at revision {state.current}, which this "
                              f"mailrouter ({state.head}) does not know: a newer release upgraded it; "
                              "run that release or restore the copy kept before its upgrade")
        if state.fresh:
            _create(connection)
            connection.commit()
            return state
        if not migrate:
            raise SchemaError(f"{_where(engine)}: {state.describe()}; run `mailrouter db upgrade` "
                              "(or start the daemon, which upgrades it)")
        backup = _backup_sqlite(engine, state)
        _upgrade(connection, state)
        connection.commit()
    log.info("database %s upgraded: %s -> %s%s", _where(engine), state.current or "pre-migration schema",
             state.head, f"; the previous file is kept as {backup}" if backup else "")
    return state


def _serialise(connection: Connection) -> None:
    """Two processes opening one PostgreSQL database at once (several instances) migrate one
    at a time; the lock ends with the transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7291001)"))


def _create(connection: Connection) -> None:
    from mailrouter.store import Base

    Base.metadata.create_all(connection)
    command.stamp(_config(connection), "head")


def _upgrade(connection: Connection, state: SchemaState) -> None:
    from mailrouter.store import add_missing_columns

    if state.current is None:
        # A release before Alembic: its schema grew by added nullable columns only, which the
        # old upgrade path adds; after that it is the baseline revision.
        add_missing_columns(connection, only=baseline_columns())
        command.stamp(_config(connection), BASELINE)
    command.upgrade(_config(connection), "head")


def baseline_columns() -> set[tuple[str, str]]:
    """(table, column) of the baseline revision, read from a scratch in-memory database."""
    from sqlalchemy import create_engine

    engine = create_engine("sqlite://")
    try:
        with engine.connect() as connection:
            command.upgrade(_config(connection), BASELINE)
            found = inspect(connection)
            return {(t, c["name"]) for t in found.get_table_names() for c in found.get_columns(t)}
    finally:
        engine.dispose()


def _backup_sqlite(engine: Engine, state: SchemaState) -> Path | None:
    """A consistent copy of the SQLite file (online backup API, WAL included) before changing it."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    target = Path(f"{database}.before-{state.head}")
    source = sqlite3.connect(database)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    shutil.copymode(database, target)  # as private as the database itself
    return target


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
