"""The package type-checks (issue 11 item 7): mypy, configured in pyproject.toml, runs here so
the README's test command, which is what CI runs, fails on a type error like on any other test."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.factories import ROOT


def mypy_cache() -> Path:
    """Kept between runs (a warm check takes a second or two, a cold one ~10 s), one per
    checkout, so two worktrees checked at once never share one."""
    tag = hashlib.sha256(str(ROOT.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"mailrouter-mypy-{tag}"


def test_mypy_finds_no_type_errors_in_the_package():
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(mypy_cache())],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues found" in done.stdout  # and it did check something: files = ["mailrouter"]
