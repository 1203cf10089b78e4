"""Write the next revision from the checkout: `python -m mailrouter.migrations.new "what changed"`.

Compares the tables declared in store.py and registry/models.py with a scratch SQLite database
at the head revision and writes migrations/versions/NNNN_<slug>.py. Read and trim what it
wrote: autogenerate sees columns, tables and indexes, not renames or data moves.
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from mailrouter.migrations import HERE, _config, head


def next_revision_id() -> str:
    numbers = [int(m.group(1)) for p in (HERE / "versions").glob("*.py") if (m := re.match(r"(\d{4})_", p.name))]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].strip():
        print(__doc__, file=sys.stderr)
        return 2
    from mailrouter.registry import models  # noqa: F401  (its tables are compared too)

    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        with engine.connect() as connection:
            command.upgrade(_config(connection), "head")
            connection.commit()
            script = command.revision(_config(connection), message=argv[0].strip(), autogenerate=True,
                                      rev_id=next_revision_id(), head=head())
        engine.dispose()
    path = Path(script.path) if script and not isinstance(script, list) else None
    if path is not None:  # autogenerate's banner comments say nothing a reader needs
        path.write_text("".join(line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                                if "### commands auto generated" not in line and "### end Alembic" not in line),
                        encoding="utf-8")
    print(f"wrote {path or script}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
