"""Schema revisions, oldest first by their down_revision chain; see docs/ARCHITECTURE.md."""
