"""`mailrouter rep away|back|list`: who takes new inquiries (stored, so the daemon sees it at once)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from mailrouter.config.schema import Config
from mailrouter.store import RepStatusRow, open_database, utcnow


def _known(config: Config, rep: str) -> None:
    if rep not in config.reps:
        raise SystemExit(f"unknown rep {rep!r} (known: {', '.join(sorted(config.reps))})")


def set_away(config: Config, rep: str, until: datetime, note: str = "", now: datetime | None = None) -> str:
    _known(config, rep)
    now = now or utcnow()
    if until <= now:  # a typo in the year would otherwise look accepted and change nothing
        raise SystemExit(f"--until {until.astimezone(config.timezone):%Y-%m-%d %H:%M %Z} is in the past "
                         f"(now {now.astimezone(config.timezone):%Y-%m-%d %H:%M %Z}); nothing changed")
    with open_database(config.database).begin() as session:
        session.merge(RepStatusRow(rep=rep, away_until=until, note=note))
    return f"{rep} is away until {until.astimezone(config.timezone):%Y-%m-%d %H:%M %Z}: no new inquiries"


def set_back(config: Config, rep: str) -> str:
    _known(config, rep)
    with open_database(config.database).begin() as session:
        session.merge(RepStatusRow(rep=rep, away_until=None, note=""))
    return f"{rep} is back and takes new inquiries"


def list_away(config: Config) -> str:
    now = utcnow()
    with open_database(config.database)() as session:
        rows = session.scalars(select(RepStatusRow).where(RepStatusRow.away_until > now)).all()
    if not rows:
        return "nobody is away"
    return "\n".join(f"{r.rep}: away until {r.away_until.astimezone(config.timezone):%Y-%m-%d %H:%M}"
                     + (f" ({r.note})" if r.note else "") for r in rows)
