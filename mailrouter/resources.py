"""The files shipped with mailrouter: templates, default rules, the example config, the unit.

In a wheel they are package data under mailrouter/data/ (setup.py copies them there); in a
checkout or an editable install they are the repository's top-level folders. Callers ask for
a name and get a real folder or file either way.
"""
from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

NAMES = ("templates", "rules", "systemd", "config.toml")


def packaged(name: str) -> Path:
    """`templates`, `rules`, `systemd` or `config.toml` as shipped with this installation."""
    if name not in NAMES:
        raise ValueError(f"no packaged data called {name!r}")
    installed = Path(str(resources.files("mailrouter"))) / "data" / name
    if installed.exists():
        return installed
    return Path(__file__).resolve().parent.parent / name  # a checkout


def version() -> str:
    """The installed distribution's version; a checkout that was never installed says so."""
    try:
        return metadata.version("mailrouter")
    except metadata.PackageNotFoundError:
        return "0+checkout"
