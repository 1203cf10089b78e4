"""Shared pieces of the benchmarks: the test bed, a config pointed at it, the daemon as a
subprocess, fast LMTP delivery, percentiles, machine facts, tables and JSON results.

Benchmarks are run by hand (`python bench/NAME.py`), never as timed tests.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import tomli_w

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailrouter.config.load import Config, load_config  # noqa: E402
from mailrouter.commands.demo import testbed_users, write_testbed_config  # noqa: E402
from mailrouter.store import open_database  # noqa: E402
from mailrouter.testing.testbed import HOST, TestBed  # noqa: E402

# A harness stopped with SIGTERM still stops its daemon and Dovecot (context managers run).
signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))

EXAMPLE_CONFIG = REPO / "config.toml"
RESULTS = Path(__file__).resolve().parent / "results"
SALES = "sales@example.com"


# ------------------------------------------------------------------------------ machine


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def machine_info() -> dict[str, object]:
    """What the figures ran on: they mean little without it."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    try:
        dovecot = subprocess.run([shutil.which("dovecot") or "/usr/sbin/dovecot", "--version"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        dovecot = "not found"
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / 2**20, 1),
            "dovecot": dovecot, "python": platform.python_version(), "kernel": platform.release()}


# ------------------------------------------------------------------------------ figures


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: Sequence[float], ps: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    out = {f"p{p:g}": percentile(values, p) for p in ps}
    out["max"] = max(values) if values else float("nan")
    out["n"] = len(values)
    return out


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def write_result(name: str, data: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {path.relative_to(REPO)}")
    return path


def code_version() -> str:
    """HEAD and uncommitted changes, plus a hash of mailrouter/*.py: the code measured."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except OSError:
            return ""
    digest = hashlib.sha256()
    for path in sorted((REPO / "mailrouter").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    head = git("rev-parse", "--short", "HEAD") or "no git"
    dirty = len(git("status", "--porcelain", "mailrouter").splitlines())
    changed = f" + {dirty} changed file(s) under mailrouter/" if dirty else ""
    return f"{head}{changed}; mailrouter/*.py sha256 {digest.hexdigest()[:12]}"


def envelope(**extra: object) -> dict[str, object]:
    """The fields every result file starts with."""
    return {"when": datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "code": code_version(), "machine": machine_info(), "load_before": load_average(), **extra}


# ------------------------------------------------------------------------------ test bed


@contextmanager
def test_bed(extra_users: Sequence[str] = ()) -> Iterator[tuple[TestBed, Path]]:
    """A throwaway Dovecot + SMTP->LMTP bed with every address of the example config."""
    workdir = Path(tempfile.mkdtemp(prefix="mrbench-"))
    workdir.chmod(0o755)  # Dovecot runs as its own user and must reach the mail store
    try:
        with TestBed(workdir / "mail", [*testbed_users(EXAMPLE_CONFIG), *extra_users]) as bed:
            yield bed, workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def write_config(bed: TestBed, workdir: Path, *, idle: bool = True, poll_interval: float | None = None,
                 mailboxes: Sequence[str] | None = None) -> Path:
    """The example config pointed at the bed; `idle=False` + `poll_interval` is fast-poll mode.

    write_testbed_config takes [daemon] keys only, so the [[mailbox]] tables are edited here.
    `mailboxes` keeps only the named ones (None: all of the example's).
    """
    path = write_testbed_config(EXAMPLE_CONFIG, bed, workdir)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    if mailboxes is not None:
        data["mailbox"] = [m for m in data["mailbox"] if m["name"] in mailboxes]
    for mailbox in data["mailbox"]:
        mailbox["idle"] = idle
        if poll_interval is not None:
            mailbox["poll_interval"] = poll_interval
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def mailboxes_config(bed: TestBed, workdir: Path, users: Sequence[str], poll_interval: float | None = None,
                     **daemon: object) -> Path:
    """The example config on the bed with one [[mailbox]] per address in `users` (named after
    its local part, otherwise as the example's first, `poll_interval` if given), `daemon` keys
    set, and no reply source asked for (the first-reply clock is not what these benchmarks measure)."""
    path = write_config(bed, workdir)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    base = {k: v for k, v in data["mailbox"][0].items() if k not in ("name", "address", "user", "display_name")}
    if poll_interval is not None:
        base["poll_interval"] = poll_interval
    data["mailbox"] = [{**base, "name": u.split("@")[0], "address": u, "user": u} for u in users]
    data["daemon"].update(daemon)
    data.setdefault("sla", {})["allow_no_reply_source"] = True
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def load(path: Path) -> Config:
    return load_config(path)


def sessions_for(config: Config):
    return open_database(config.database)


class LmtpSender:
    """Delivery over one LMTP connection (bed.deliver opens one per message: slow for 10,000)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._lmtp = smtplib.LMTP(HOST, port, timeout=60)

    def deliver(self, rcpt: str, raw: bytes, mail_from: str = "") -> None:
        # smtplib reads one reply after LMTP's DATA: one recipient per transaction
        self._lmtp.sendmail(mail_from, [rcpt], raw)

    def close(self) -> None:
        try:
            self._lmtp.quit()
        except (smtplib.SMTPException, OSError):
            pass

    def __enter__(self) -> LmtpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------ daemon


class DaemonProcess:
    """`python run.py -c CONFIG run` as a child; /proc gives its memory and CPU."""

    def __init__(self, config_path: Path, log_path: Path, log_level: str = "INFO") -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.started = time.time()
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "run.py"), "-c", str(config_path), "--log-level", log_level, "run"],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    def wait_connected(self, mailboxes: Sequence[str], timeout: float = 60.0) -> float:
        """Until each named worker logged "connected"; returns seconds since spawn."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if all(f"{name}: connected to" in text for name in mailboxes):
                return time.time() - self.started
            self.check_alive()
            time.sleep(0.05)
        raise RuntimeError(f"daemon did not connect within {timeout}s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.log_tail()}")

    def status(self) -> dict[str, int]:
        """VmRSS, VmHWM (peak RSS) in KiB, from /proc/PID/status."""
        return _memory(self.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU of the daemon (all threads) so far."""
        return _cpu_seconds(self.pid)

    def children(self) -> list[int]:
        """The daemon's child processes now (the parser process during a backlog)."""
        pids: list[int] = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except FileNotFoundError:  # a thread that ended meanwhile
                continue
        return pids

    def children_status(self) -> dict[int, dict[str, object]]:
        """Per child: VmRSS, VmHWM (KiB) and CPU seconds; a child that ended is simply absent."""
        out: dict[int, dict[str, object]] = {}
        for pid in self.children():
            try:
                out[pid] = {**_memory(pid), "cpu": _cpu_seconds(pid)}
            except FileNotFoundError:
                continue
        return out

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (as systemd would) and wait; SIGKILL only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, KiB."""
    fields = (line.partition(":") for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: int(value.split()[0]) for key, _, value in fields if key in ("VmRSS", "VmHWM")}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mib(kib: int) -> float:
    return round(kib / 1024, 1)
