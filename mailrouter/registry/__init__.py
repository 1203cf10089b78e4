"""Customer registry: one client, one rep (issue 3).

models (tables) · keys and normalise (pure sender keys) · match (who is this sender?) ·
record (writes) · importer (CSV/XLSX in, CSV out) · score (lead score, pure) · settings · cli.

Import from the module you need: this package imports nothing itself, so the parser process
can use the pure parts (keys, normalise, score) without loading the database layer.
"""
