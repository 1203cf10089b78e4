"""A credential read only when a command logs in.

Admin commands (status, report, overdue, rep, registry, suggest-rules, explain) read the
config without reading any secret: a password file readable only by the service, or an
environment variable set only in the unit, must not stop an operator from asking who is away.
The source is resolved, with the same checks `check` makes, on the first get().
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailrouter.config.credentials import CredentialError, CredentialSource, Kind, SourceResult


@dataclass
class DeferredSource:
    key: str  # e.g. "mailbox[0]." for the error message
    resolve: Callable[[], SourceResult] = field(repr=False)
    kind: Kind = "password"

    def get(self) -> str:
        result = self.resolve()
        if result.problems or result.source is None:
            raise CredentialError("; ".join(f"{key}: {message}" for key, message in result.problems)
                                  or f"{self.key}: no credential")
        return result.source.get()


__all__ = ["CredentialSource", "DeferredSource"]
