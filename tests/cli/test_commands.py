"""The CLI's one command shape: every command is a module ``lowvram_r1/cli/<command>.py`` with ``add(subparsers)``
(its parser, under its own name) and ``run(args) -> int`` (the exit code); ``cli/__init__.py`` only assembles them,
and ``lowvram-r1 --help`` lists every one."""

from __future__ import annotations

import argparse
import ast
import inspect
from pathlib import Path

import pytest

from lowvram_r1 import cli
from tests.paths import ROOT

CLI_DIR = ROOT / "lowvram_r1" / "cli"


def top_level_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("name", cli.COMMANDS)
def test_every_command_module_has_the_one_shape(name: str) -> None:
    module = cli.command(name)
    assert Path(module.__file__) == CLI_DIR / f"{name}.py"
    add, run = inspect.signature(module.add), inspect.signature(module.run)
    assert list(add.parameters) == ["subparsers"] and add.return_annotation in (None, "None")
    assert len(run.parameters) == 1 and run.return_annotation in (int, "int")
    subparsers = argparse.ArgumentParser().add_subparsers()
    module.add(subparsers)
    assert list(subparsers.choices) == [name]  # each module adds its own command, under its own name


def test_every_command_module_is_registered_and_no_old_shape_is_left() -> None:
    shaped = sorted(p.stem for p in CLI_DIR.glob("*.py") if {"add", "run"} <= top_level_functions(p))
    assert shaped == sorted(cli.COMMANDS), "a module with add() and run() is a command: list it in cli.COMMANDS"
    old = sorted(f"{p.name}:{f}" for p in CLI_DIR.glob("*.py") for f in top_level_functions(p) if f.startswith("cmd_"))
    assert old in ([], ["rewards.py:cmd_check_task"]), f"commands are run(args) in their own module: {old}"
    assert top_level_functions(CLI_DIR / "__init__.py") == {"build_parser", "command", "main"}


def test_help_lists_every_command(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = out.split("{", 1)[1].split("}", 1)[0].split(",")
    assert listed == list(cli.COMMANDS)
    for name in cli.COMMANDS:
        assert f"\n    {name} " in out, f"{name} has no help line in lowvram-r1 --help"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '[project.scripts]\nlowvram-r1 = "lowvram_r1.cli:main"\n' in pyproject  # the console script is this main
