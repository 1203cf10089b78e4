"""`mailrouter rep away|back|list`: who takes new inquiries (stored, so the daemon sees it at once)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from mailrouter.config.schema import Config
from mailrouter.store import RepStatusRow, open_database, utcnow

# Every line `rep` prints, per language (issue 15 item 6); rep ids stay as typed on the command line.
LABELS = {
    "en": {"unknown": "unknown rep {rep!r} (known: {known})",
           "past": "--until {until} is in the past (now {now}); nothing changed",
           "away": "{rep} is away until {until}: no new inquiries", "back": "{rep} is back and takes new inquiries",
           "nobody": "nobody is away", "listed": "{rep}: away until {until}", "note": " ({note})"},
    "zh": {"unknown": "未知业务员 {rep!r}（已配置：{known}）",
           "past": "--until {until} 已是过去（现在 {now}）；未做任何更改",
           "away": "{rep} 休假至 {until}：不再分配新询盘", "back": "{rep} 已回来，重新接收新询盘",
           "nobody": "没有人休假", "listed": "{rep}：休假至 {until}", "note": "（{note}）"},
}


def labels(language: str) -> dict[str, str]:
    return LABELS["zh" if language == "zh" else "en"]


def _known(config: Config, rep: str, t: dict[str, str]) -> None:
    if rep not in config.reps:
        raise SystemExit(t["unknown"].format(rep=rep, known=", ".join(sorted(config.reps))))


def set_away(config: Config, rep: str, until: datetime, note: str = "", now: datetime | None = None,
             language: str = "en") -> str:
    t = labels(language)
    _known(config, rep, t)
    now = now or utcnow()
    if until <= now:  # a typo in the year would otherwise look accepted and change nothing
        raise SystemExit(t["past"].format(until=f"{until.astimezone(config.timezone):%Y-%m-%d %H:%M %Z}",
                                          now=f"{now.astimezone(config.timezone):%Y-%m-%d %H:%M %Z}"))
    with open_database(config.database).begin() as session:
        session.merge(RepStatusRow(rep=rep, away_until=until, note=note))
    return t["away"].format(rep=rep, until=f"{until.astimezone(config.timezone):%Y-%m-%d %H:%M %Z}")


def set_back(config: Config, rep: str, language: str = "en") -> str:
    t = labels(language)
    _known(config, rep, t)
    with open_database(config.database).begin() as session:
        session.merge(RepStatusRow(rep=rep, away_until=None, note=""))
    return t["back"].format(rep=rep)


def list_away(config: Config, language: str = "en") -> str:
    t = labels(language)
    now = utcnow()
    with open_database(config.database)() as session:
        away = [(r.rep, r.away_until, r.note) for r in session.scalars(
            select(RepStatusRow).where(RepStatusRow.away_until > now)) if r.away_until is not None]
    if not away:
        return t["nobody"]
    return "\n".join(t["listed"].format(rep=rep, until=f"{until.astimezone(config.timezone):%Y-%m-%d %H:%M}")
                     + (t["note"].format(note=note) if note else "") for rep, until, note in away)
