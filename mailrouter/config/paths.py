"""Where files go when config.toml does not say: the state directory and the template folders.

Under systemd (`StateDirectory=mailrouter`) the service gets $STATE_DIRECTORY, the one place
its sandbox may write; a root shell running `status` or `check` against the unit's
/etc/mailrouter/config.toml must find the same database, so that layout maps to
/var/lib/mailrouter too. Anywhere else the config's own folder is the state directory.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mailrouter.resources import packaged

SERVICE_CONFIG_DIR = Path("/etc/mailrouter")  # the unit's ConfigurationDirectory=mailrouter
SERVICE_STATE_DIR = Path("/var/lib/mailrouter")  # the unit's StateDirectory=mailrouter
TEMPLATE_OVERRIDES = "templates"  # beside config.toml: your edits win, the packaged ones fill in


def state_dir(config_dir: Path, environ: Mapping[str, str]) -> Path:
    """The database's and spool's folder when [daemon] names none."""
    given = environ.get("STATE_DIRECTORY", "").split(":")[0]  # systemd lists several with ':'
    if given:
        return Path(given)
    if config_dir.resolve() == SERVICE_CONFIG_DIR:
        return SERVICE_STATE_DIR
    return config_dir


def template_dirs(config_dir: Path, configured: Path | None) -> tuple[Path, ...]:
    """Folders searched for each template, first hit wins: `forward.template_dir` if set, else
    templates/ beside the config if it exists; the packaged templates always come last, so an
    override folder needs only the files it changes."""
    first = configured if configured is not None else config_dir / TEMPLATE_OVERRIDES
    folders = [first] if configured is not None or first.is_dir() else []
    folders.append(packaged("templates"))
    return tuple(dict.fromkeys(p.resolve() for p in folders))
