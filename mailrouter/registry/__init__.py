"""Customer registry: one client, one rep (issue 3).

models (tables) · normalise (pure keys) · match (who is this sender?) · record (writes) ·
importer (CSV/XLSX in, CSV out) · score (lead score, pure) · settings · cli.
"""
from __future__ import annotations

import importlib

# Names resolve on first use (PEP 562), so that the pure parts (keys, normalise, score) can be
# imported by the parser process without the database layer.
_WHERE = {
    "RegistryMatch": "match", "match_sender": "match",
    "ACTIVE": "models", "BLOCKED": "models", "DO_NOT_CONTACT": "models", "REJECTED": "models",
    "STATUSES": "models",
    "RegistryError": "record", "block_sender": "record", "handover": "record",
    "record_routed": "record", "set_status": "record", "transfer": "record",
    "Score": "score", "ScoreSettings": "score", "score_inquiry": "score",
    "RegistrySettings": "settings", "read_registry_section": "settings",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
