"""The installation's marker key (mailrouter/marker.py): made once, kept 0600 beside the database.

A generated key needs no configuration and survives restarts and reloads; it is never logged.
Losing the file only means the router's own mail from before is no longer recognised as its
own: it is then filed in Unrecognized with the reason, never routed.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import replace
from pathlib import Path

from mailrouter.config.schema import Config

KEY_BYTES = 32


def read_key(path: Path) -> bytes | None:
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    return key if len(key) >= KEY_BYTES else None


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, created (0600, whatever the umask) on first use."""
    if (key := read_key(path)) is not None:
        return key
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fresh = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first (or a short file): theirs wins
        return read_key(path) or _refuse(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(fresh)
        fh.flush()
        os.fsync(fh.fileno())
    return fresh


def _refuse(path: Path) -> bytes:
    raise RuntimeError(f"{path}: the marker key file is shorter than {KEY_BYTES} bytes; "
                       "remove it and start again (a new key is made)")


def with_installation_key(config: Config, create: bool = True) -> Config:
    """`config` with the installation's key; unchanged when it names no key file, or when the
    file is missing and `create` is False (read-only commands)."""
    if config.marker_key_file is None:
        return config
    if create:
        return replace(config, marker_key=load_or_create_key(config.marker_key_file))
    try:
        key = read_key(config.marker_key_file)
    except OSError:  # an admin shell that may not read the service's state: markers stay unverified
        return config
    return replace(config, marker_key=key) if key else config
