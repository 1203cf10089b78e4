"""Intake stage: the IMAP adapter, spool files for large messages, message fingerprints."""
