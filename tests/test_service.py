"""sd_notify against a real AF_UNIX datagram socket, as systemd listens for it."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailrouter.runtime import systemd as service


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    # Not tmp_path: socket paths are limited to 108 bytes and pytest's can be longer.
    folder = Path(tempfile.mkdtemp(prefix="mr-notify-"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(folder / "notify"))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(folder / "notify"))
    yield sock
    sock.close()
    shutil.rmtree(folder)


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_with_status(notify_socket: socket.socket) -> None:
    assert service.notify_ready("2 mailboxes\nconnected")
    assert received(notify_socket) == "READY=1\nSTATUS=2 mailboxes connected"


def test_status_stopping_and_watchdog(notify_socket: socket.socket) -> None:
    service.notify_status("routing")
    service.notify_stopping()
    service.watchdog_ping()
    assert [received(notify_socket) for _ in range(3)] == ["STATUS=routing", "STOPPING=1", "WATCHDOG=1"]


def test_reloading_carries_monotonic_time(notify_socket: socket.socket) -> None:
    service.notify_reloading()
    first, second = received(notify_socket).split("\n")
    assert first == "RELOADING=1"
    assert second.startswith("MONOTONIC_USEC=") and int(second.split("=")[1]) > 0


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"mailrouter-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert service.watchdog_ping()
        assert received(sock) == "WATCHDOG=1"


def test_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert service.notify_ready("x") is False
    assert service.watchdog_ping() is False


def test_missing_socket_is_not_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert service.notify_status("x") is False


@pytest.mark.parametrize("env, expected", [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert service.watchdog_interval(env) == expected
