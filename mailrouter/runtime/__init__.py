"""The daemon's lifecycle: mailbox loops, systemd integration, logging, start-up checks."""
