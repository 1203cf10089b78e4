"""Build step: copy the top-level data folders into the wheel as `mailrouter/data/`.

templates/, rules/, systemd/ and config.toml stay where a reader of the repository expects
them; installed from a wheel, the code finds the same files via importlib.resources
(mailrouter/resources.py). Everything else about the build is in pyproject.toml.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = ("templates", "rules", "systemd", "config.toml")


class build_py_with_data(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "mailrouter" / "data"
        for name in DATA:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": build_py_with_data})
