"""Where the first-reply clock starts. Pure, so the rule lives in one place.

An inquiry's clock starts when it arrived on the server, not when the daemon first saw it: one
that came in while the daemon was stopped kept its buyer waiting all the same. The server's
INTERNALDATE is what the delivering or APPENDing client made it (a message moved in from an
archive keeps its old date; a server clock may run ahead), so it is bounded:

- never later than the moment the daemon first saw the message;
- never earlier than the last moment the daemon is known to have looked without seeing it: the
  previous round of the running daemon, or after a restart its latest decision in that mailbox;
- with neither (a first start's backfill) it is the moment first seen: mail that came before the
  daemon existed is not counted against the reps.
"""
from __future__ import annotations

from datetime import datetime


def arrival_time(internal_date: datetime | None, first_seen: datetime, looked_before: datetime | None) -> datetime:
    """The arrival to record for a message first seen at `first_seen` (see the module's rule)."""
    if internal_date is None or looked_before is None:
        return first_seen
    return min(max(internal_date, looked_before), first_seen)


def reply_clock_start(how: str, reassigned_from: int | None, assigned_at: datetime,
                      arrived_at: datetime) -> datetime:
    """Where an assignment's first-reply time and due time count from.

    The rules' (or the registry's) first assignment: the arrival, which is what the buyer
    waited. A manual assignment: when the manager assigned it, since it sat with the manager
    until then. A reassignment: the handover, so each rep is measured on their own time.
    """
    if how in ("manual", "reassign") or reassigned_from is not None:
        return assigned_at
    return min(arrived_at, assigned_at)
