"""The filer's decisions, pure: where a shared copy that is to follow its row's folder is decides
what to do with it (issue 11, "one filer"; the moves are runtime/mailbox.py's, the rows the
ledger's). The row is the truth about where the copy should be; the server about where it is.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mailrouter.store import MessageRow


@dataclass(frozen=True)
class Refile:
    """The UIDs to move from where the copy was, and a note for the log when it cannot be done
    as recorded."""

    uids: list[int]
    note: str = ""
    stays: bool = False  # the copy stays where it was: the row's folder follows it


def refile_verdict(row: MessageRow, in_old: list[int], in_new: Callable[[], list[int]]) -> Refile:
    """Still where it was filed → move it; already in the new folder (moved, then a crash or a
    lost connection before that was recorded) → done; in neither (a person moved or deleted
    it) → left alone, said once. `in_new` is asked only when needed (it selects a folder)."""
    if not row.message_id:  # nothing to search for: it is where it was filed
        return Refile([], f"has no Message-ID to find it by; left in {row.refile_from}", stays=True)
    if in_old:
        return Refile(in_old)
    if in_new():
        return Refile([])
    return Refile([], f"is in neither {row.refile_from} nor {row.folder} (moved by a person?); left where it is")


def refused(row: MessageRow, error: str) -> Refile:
    """The server refused the move for good: the copy stays, and the row says so."""
    return Refile([], f"could not be moved to {row.folder}: {error}; left in {row.refile_from}", stays=True)
