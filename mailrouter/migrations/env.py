"""Alembic's entry point, run by mailrouter/migrations/__init__.py (never by an alembic.ini).

The caller hands over an open connection in `config.attributes["connection"]`, so a migration
runs on the same engine (SQLite pragmas, PostgreSQL pool) as the daemon. Batch mode lets
SQLite, which cannot ALTER most things, rebuild a table when a revision needs it.
"""
from alembic import context

from mailrouter.store import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
