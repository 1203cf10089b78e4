"""Command output language: daemon.language is the default, --language overrides it (issue 15 item 6)."""
from __future__ import annotations

from pathlib import Path

import pytest

from mailrouter.commands.cli import main
from mailrouter.config.load import ConfigError, load_config
from tests.factories import EXAMPLE_ENV, copy_example


def with_language(tmp_path: Path, value: str) -> Path:
    path = copy_example(tmp_path)
    text = path.read_text(encoding="utf-8").replace("[daemon]\n", f'[daemon]\nlanguage = "{value}"\n', 1)
    text = text.replace('# database = "sqlite:////var/lib/mailrouter/mailrouter.db"',
                        f'database = "sqlite:///{tmp_path / "m.db"}"')
    path.write_text(text, encoding="utf-8")
    return path


def test_an_unknown_language_names_file_key_and_choices(tmp_path: Path) -> None:
    path = with_language(tmp_path, "fr")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=EXAMPLE_ENV)
    assert any(str(path) in str(p) and "daemon.language" in str(p) and "en, zh" in str(p)
               for p in info.value.problems)


def test_status_follows_the_config_unless_told(tmp_path: Path, capsys, monkeypatch) -> None:
    path = with_language(tmp_path, "zh")
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["-c", str(path), "status"]) == 0
    assert capsys.readouterr().out.startswith("mailrouter 状态（")
    assert main(["-c", str(path), "status", "--language", "en"]) == 0
    assert capsys.readouterr().out.startswith("mailrouter status at ")
