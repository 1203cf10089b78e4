"""The local test bed (Dovecot + SMTP on loopback) and demo samples; no production path uses it."""
