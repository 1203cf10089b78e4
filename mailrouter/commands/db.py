"""`mailrouter db current | upgrade | copy --to URL`: the database's schema and moving house.

`copy` is how an installation outgrows one machine: every table of the configured database
(usually SQLite) into an empty PostgreSQL database, ids kept, in one transaction on the target
so a failure leaves it empty. The daemon must be stopped meanwhile; afterwards the sysadmin
points `daemon.database` at the new URL.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Integer, Table, create_engine, func, insert, select, text
from sqlalchemy.engine import Connection, make_url

from mailrouter.migrations import ensure_schema, schema_state
from mailrouter.store import Base, open_database

BATCH = 1000  # rows per INSERT: bounded memory on a database of years

# What `db` prints, per language (issue 15 item 6); driver errors stay as the driver gave them.
LABELS = {
    "en": {"rows": "  {table}: {rows} rows",
           "copied": "copied {rows} rows in {tables} tables; now set daemon.database to the new URL in {path} "
                     "and start the daemon",
           "not_empty": "the target already holds rows in {tables}; copy into an empty database "
                        "(nothing is merged or overwritten)",
           "failed": "db {action}: {error}"},
    "zh": {"rows": "  {table}：{rows} 行",
           "copied": "已复制 {tables} 张表共 {rows} 行；请在 {path} 中把 daemon.database 改为新 URL，再启动守护进程",
           "not_empty": "目标数据库的 {tables} 表中已有数据；请复制到空数据库（不会合并或覆盖任何数据）",
           "failed": "db {action}：{error}"},
}


def labels(language: str) -> dict[str, str]:
    return LABELS["zh" if language == "zh" else "en"]




class CopyRefused(Exception):
    """The target cannot take the copy; the message says why."""


@dataclass(frozen=True)
class Copied:
    table: str
    rows: int


def shown(url: str) -> str:
    """The URL without its password, for output."""
    return make_url(url).render_as_string(hide_password=True)


def current(url: str, language: str = "en") -> str:
    """One line: the schema revision of the database at `url` and whether it is current."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return schema_state(connection).describe(language)
    finally:
        engine.dispose()


def upgrade(url: str, language: str = "en") -> str:
    open_database(url, migrate=True)  # logs what it did and where the copy of a SQLite file is
    return current(url, language)


def copy(source_url: str, target_url: str, progress: Callable[[Copied], None] = lambda _c: None,
         language: str = "en") -> list[Copied]:
    """Copy every table from `source_url` (at the current schema) into the empty `target_url`."""
    source = open_database(source_url).kw["bind"]  # refuses a source that needs an upgrade first
    target = create_engine(target_url)
    try:
        ensure_schema(target, migrate=False)  # a new target gets the tables and the revision stamp
        with source.connect() as src, target.begin() as dst:
            _refuse_unless_empty(dst, labels(language))
            copied = []
            for table in Base.metadata.sorted_tables:  # parents before children (foreign keys)
                done = Copied(table.name, _copy_table(table, src, dst))
                progress(done)
                copied.append(done)
            _reset_sequences(dst)
        return copied
    finally:
        target.dispose()


def _refuse_unless_empty(dst: Connection, t: dict[str, str]) -> None:
    filled = [table.name for table in Base.metadata.sorted_tables
              if dst.scalar(select(func.count()).select_from(table))]
    if filled:
        raise CopyRefused(t["not_empty"].format(tables=", ".join(filled)))


def _copy_table(table: Table, src: Connection, dst: Connection) -> int:
    count = 0
    result = src.execution_options(yield_per=BATCH).execute(select(table).order_by(*table.primary_key.columns))
    for rows in result.partitions(BATCH):
        dst.execute(insert(table), [dict(row._mapping) for row in rows])
        count += len(rows)
    return count


def _reset_sequences(dst: Connection) -> None:
    """Ids were copied as they were; PostgreSQL's sequences must continue after the largest.
    (setval is strict: a key without a sequence gives NULL, not an error.)"""
    if dst.dialect.name != "postgresql":
        return
    for table in Base.metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        if len(keys) == 1 and isinstance(keys[0].type, Integer):
            name = keys[0].name
            dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', '{name}'), "
                             f"COALESCE(MAX({name}), 1), MAX({name}) IS NOT NULL) FROM {table.name}"))
