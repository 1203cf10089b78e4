"""registry transfer: --dry-run lists what would move and moves nothing (issue 15 item 6)."""
from __future__ import annotations

import argparse
from dataclasses import replace

from mailrouter.registry.cli import add_registry_parser
from tests.factories import example_config
from tests.test_registry_import import FAIR, write


def test_transfer_dry_run_lists_the_customers_and_moves_none(tmp_path, capsys) -> None:
    config = replace(example_config(), database=f"sqlite:///{tmp_path / 'cli.db'}")
    parser = argparse.ArgumentParser()
    add_registry_parser(parser.add_subparsers())

    def run(*argv: str) -> int:
        args = parser.parse_args(["registry", *argv])
        return args.handler(args, config)

    assert run("import", str(write(tmp_path, "fair.csv", FAIR)), "--source", "Fair", "--owner", "zhang") == 0
    capsys.readouterr()
    assert run("transfer", "--from", "zhang", "--to", "wang", "--dry-run") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "would transfer 2 customer(s) from zhang to wang (dry run: nothing changed)"
    assert out[1:] == ["  Acme Industrietechnik GmbH Hans Müller DE",
                       "  Rossi S.r.l. Maria Rossi <maria@rossi.it> IT"]
    assert run("show", "rossi.it") == 0
    assert "owner:    zhang" in capsys.readouterr().out  # nothing moved

    assert run("transfer", "--from", "zhang", "--to", "wang") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "transferred 2 customer(s) from zhang to wang" and len(out) == 3
    assert run("transfer", "--from", "wang", "--to", "wang", "--dry-run") == 1
