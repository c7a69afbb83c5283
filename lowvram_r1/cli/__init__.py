"""``lowvram-r1``: the command line. A thin shell: flags come from the config dataclasses, choices from TASKS.

    lowvram-r1 train --task countdown --model tiny          # the offline CPU demo
    lowvram-r1 train --config cpu-demo --max-steps 20
    lowvram-r1 train --output-dir runs/NAME --resume        # continue a run from its last checkpoint
    lowvram-r1 train --config cpu-demo --num-processes 2   # two processes (GPUs, or gloo on CPU)
    lowvram-r1 tasks                                        # tasks, their rewards and weights
    lowvram-r1 recipes                                      # the shipped recipes (show NAME, copy NAME FILE)
    lowvram-r1 runs                                         # run directories: status, step, reward, accuracy
    lowvram-r1 health runs/NAME [--json]                    # why the reward is flat, and what to change
    lowvram-r1 plan --model Qwen/Qwen2.5-1.5B-Instruct --gpu-memory 8GB   # will it fit? (--auto-fit: make it)
    lowvram-r1 ui                                           # the web panel on http://127.0.0.1:7860

Bad input exits with code 2 and one line saying what to do, before any model loads.

Each command is one module, ``cli/<command>.py``, with the same two functions: ``add(subparsers)`` declares its
parser, ``run(args) -> int`` runs it and returns the exit code. This file puts the parser together (``COMMANDS``, in
``--help``'s order) and ``main`` dispatches, turning a bad input into exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType

from lowvram_r1 import __version__
from lowvram_r1.cli.flags import overrides_from
from lowvram_r1.cli.train import train_config
from lowvram_r1.logs import quiet_libraries

__all__ = ["COMMANDS", "EXIT_BAD_INPUT", "build_parser", "command", "main", "overrides_from", "train_config"]

EXIT_BAD_INPUT = 2
# Every command, in the order ``lowvram-r1 --help`` lists them; each is the module ``lowvram_r1.cli.<name>``.
COMMANDS = (
    "train",
    "plan",
    "tasks",
    "score",
    "runs",
    "doctor",
    "index",
    "eval",
    "sft",
    "sample",
    "export",
    "pipeline",
    "recipes",
    "health",
    "smoke",
    "ui",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep its usage line short
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def command(name: str) -> ModuleType:
    """The module of command ``name``: ``add(subparsers) -> None`` and ``run(args) -> int``."""
    return importlib.import_module(f"lowvram_r1.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lowvram-r1", description="R1-style GRPO reasoning training on one consumer GPU.")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        command(name).add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --num-processes` re-runs it as given
    except SystemExit as exit_request:  # argparse's --help (0) and usage errors (2), as a return code
        return int(exit_request.code or 0)
    quiet_libraries(args.verbose)
    from lowvram_r1.tasks import TaskDataError

    try:
        return command(args.command).run(args)
    except (ValueError, TaskDataError) as error:
        print(f"lowvram-r1: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lowvram-r1 runs | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
