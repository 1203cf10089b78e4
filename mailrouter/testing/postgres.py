"""A throwaway PostgreSQL cluster on a free loopback port, for tests and benchmarks.

Debian's `postgresql` package provides the binaries; the cluster lives in a temporary folder
owned by the `postgres` user (initdb refuses root), listens on 127.0.0.1 only, trusts local
connections (nothing but this machine can reach it) and runs with fsync off: it holds test
data that is thrown away, so durability would only slow the tests down.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

INSTALL_HINT = "apt-get install postgresql"
USER = "mailrouter"


def postgres_bin() -> Path | None:
    """The newest installed server's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions else None


def postgres_available() -> bool:
    return postgres_bin() is not None and _owner() is not None


def _owner() -> pwd.struct_passwd | None:
    """The account the cluster runs as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayPostgres:
    """Start with `start()`, make databases with `new_database()`, end with `stop()`."""

    def __init__(self, durable: bool = False) -> None:
        """`durable`: fsync and synchronous commits on, as in production (benchmarks); tests
        run without them, which only matters if the machine loses power."""
        bindir, owner = postgres_bin(), _owner()
        if bindir is None or owner is None:
            raise RuntimeError(f"PostgreSQL server not found ({INSTALL_HINT})")
        self.bindir, self.owner = bindir, owner
        self.root = Path(tempfile.mkdtemp(prefix="mailrouter-pg-"))
        self.port = _free_port()
        self._count = 0
        self._lock = threading.Lock()
        self.durable = durable

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.owner.pw_name, "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> ThrowawayPostgres:
        os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8", "--locale=C.UTF-8")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg  # only tests that use PostgreSQL need the driver

        with self._lock:
            self._count += 1
            name = f"t{os.getpid()}_{self._count}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass  # already gone; the folder goes anyway
        shutil.rmtree(self.root, ignore_errors=True)
