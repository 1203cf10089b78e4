"""Customer registry: one client, one rep (issue 3).

models (tables) · normalise (pure keys) · match (who is this sender?) · record (writes) ·
importer (CSV/XLSX in, CSV out) · score (lead score, pure) · settings · cli.
"""
from __future__ import annotations

from .match import RegistryMatch, match_sender
from .models import ACTIVE, BLOCKED, DO_NOT_CONTACT, REJECTED, STATUSES
from .record import RegistryError, block_sender, handover, record_routed, set_status, transfer
from .score import Score, ScoreSettings, score_inquiry
from .settings import RegistrySettings, read_registry_section

__all__ = ["ACTIVE", "BLOCKED", "DO_NOT_CONTACT", "block_sender", "REJECTED", "STATUSES", "RegistryError", "RegistryMatch",
           "RegistrySettings", "Score", "ScoreSettings", "handover", "match_sender",
           "read_registry_section", "record_routed", "score_inquiry", "set_status",
           "transfer"]
