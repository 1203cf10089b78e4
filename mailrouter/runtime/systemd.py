"""Talk to systemd (sd_notify) without a dependency: readiness, status, reload, watchdog.

systemd's protocol is one AF_UNIX datagram of "KEY=value" lines to $NOTIFY_SOCKET. Every
function here is a no-op when that variable is unset (run by hand, in tests, in a container),
so the daemon calls them unconditionally instead of branching on "am I under systemd".
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("mailrouter.service")


def _address(environ: Mapping[str, str]) -> str | bytes | None:
    """The socket address; '@name' is Linux's abstract namespace, spelled with a NUL byte."""
    path = environ.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    if not path.startswith("/"):  # e.g. vsock:... which we do not speak; better silent than wrong
        return None
    return path


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify message; True if it was sent. Never raises: a lost STATUS must not
    stop mail routing, and systemd's watchdog catches a process that really is stuck."""
    address = _address(os.environ if environ is None else environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
        return True
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
        return False


def _one_line(text: str) -> str:
    # A newline would start a new KEY=value assignment in the datagram.
    return " ".join(text.splitlines())


def notify_ready(status: str = "") -> bool:
    """Start-up checks passed: systemd marks the unit active (Type=notify) and starts ordering."""
    return notify("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))


def notify_status(text: str) -> bool:
    """A one-line state shown by `systemctl status mailrouter`."""
    return notify(f"STATUS={_one_line(text)}")


def notify_stopping() -> bool:
    return notify("STOPPING=1")


def notify_reloading() -> bool:
    """Before a reload; send notify_ready() when done. MONOTONIC_USEC lets Type=notify-reload
    (systemd 253+) tell this reload from an earlier one."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def watchdog_ping() -> bool:
    """Prove the main loop is alive; call it at least every watchdog_interval() seconds."""
    return notify("WATCHDOG=1")


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of WatchdogSec=, as sd_watchdog_enabled advises), or None
    when the watchdog is off or meant for another process (WATCHDOG_PID is not ours)."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    return usec / 1_000_000 / 2
