"""The wheel alone makes a working install (issue 12, item 3, test b).

Built from a copy of this checkout, installed into a fresh venv outside it, run from a folder
that has no checkout in sight: `--version`, `init`, `check` against the test bed (with the
credentials the unit would hand over) and `explain` work with the packaged templates and rules.
The venv borrows the shared venv's dependencies through a .pth line, so no network is needed;
mailrouter itself comes only from the wheel (asserted).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import tomli_w

from mailrouter.testing.samples import demo_samples
from mailrouter.testing.testbed import TestBed
from tests.factories import ROOT

pytestmark = pytest.mark.integration

SOURCES = ("mailrouter", "templates", "rules", "systemd", "config.toml", "pyproject.toml", "setup.py",
           "MANIFEST.in", "README.md", "LICENSE")


def build_wheel(tmp_path: Path) -> Path:
    """`pip wheel --no-deps` on a copy: an in-tree build would leave build/ in the checkout."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif path.exists():
            shutil.copy(path, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                    str(src)], check=True, timeout=300, env=clean_env())
    (wheel,) = (tmp_path / "dist").glob("mailrouter-*.whl")
    return wheel


def fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # dependencies only: a directory named in a .pth is added to sys.path, its own .pth files
    # (the shared venv's editable install of the checkout) are not run
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "-q", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300, env=clean_env())
    return venv


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STATE_DIRECTORY",
                                                             "CREDENTIALS_DIRECTORY")}
    return {**env, **extra}


def point_at_bed(config: Path, bed: TestBed) -> None:
    """The servers of `init`'s config made the bed's; the secrets stay credential files."""
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    for server in [*data["mailbox"], data["smtp"]]:
        server.update(host=bed.host, tls="none", timeout=30)
    for mailbox in data["mailbox"]:
        mailbox["port"] = bed.imap_port
    data["smtp"]["port"] = bed.smtp_port
    data["sla"]["allow_no_reply_source"] = True
    config.write_text(tomli_w.dumps(data), encoding="utf-8")


def test_wheel_installs_and_runs_outside_the_checkout(bed: TestBed, tmp_path: Path) -> None:
    venv = fresh_venv(tmp_path, build_wheel(tmp_path))
    exe = str(venv / "bin" / "mailrouter")
    work, state = tmp_path / "elsewhere", tmp_path / "state"
    work.mkdir()
    state.mkdir()
    env = clean_env(STATE_DIRECTORY=str(state))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], cwd=work, env=env, capture_output=True, text=True, timeout=120)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import mailrouter.resources as r; "
                            "print(r.__file__); print(r.packaged('templates'))"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(line.startswith(str(venv)) for line in where), where
    (license_file,) = venv.glob("lib/python3*/site-packages/mailrouter-*.dist-info/**/LICENSE")
    assert license_file.read_text().startswith("MIT License")

    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("mailrouter 0."), version.stderr
    etc = work / "etc"
    assert run("init", str(etc)).returncode == 0
    for name in ("sales-password", "info-password", "smtp-password"):
        (etc / "credentials" / name).write_text(bed.password)
        (etc / "credentials" / name).chmod(0o600)
    point_at_bed(etc / "config.toml", bed)

    check = run("-c", str(etc / "config.toml"), "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"templates in {where[1]}: OK" in check.stdout
    assert f"spool folder {state / 'spool'}: OK" in check.stdout

    sample = next(s for s in demo_samples() if s.outcome == "routed" and s.target and ":" not in s.target)
    (work / "inquiry.eml").write_bytes(sample.raw)
    explain = run("-c", str(etc / "config.toml"), "explain", "inquiry.eml")
    assert explain.returncode == 0, explain.stderr
    assert f"Decision:   routed -> {sample.target}" in explain.stdout

    # the migrations travel in the wheel: a new database is created at the head revision
    upgrade = run("-c", str(etc / "config.toml"), "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert "(current)" in upgrade.stdout
