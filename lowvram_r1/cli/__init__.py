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
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from lowvram_r1 import __version__, config
from lowvram_r1.cli.info import num, pct
from lowvram_r1.logs import quiet_libraries
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.files import is_regular

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep its usage line short
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lowvram-r1", description="R1-style GRPO reasoning training on one consumer GPU.")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="run GRPO training",
        description="Run GRPO training. Precedence: defaults < --config YAML < flags.",
    )
    train.add_argument("--config", help="a recipe name (see `lowvram-r1 recipes`, e.g. gsm8k/8gb) or a YAML file")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    from lowvram_r1.cli.plan import add_plan_command, add_train_options

    add_train_options(train)
    add_config_flags(train)
    add_plan_command(commands, add_config_flags)

    from lowvram_r1.cli.info import add_info_commands
    from lowvram_r1.cli.stages import add_stage_commands

    add_info_commands(commands)
    add_stage_commands(commands, add_config_flags)
    from lowvram_r1.cli.health import add_health_command
    from lowvram_r1.cli.recipes_cmd import add_recipes_command

    add_recipes_command(commands)
    add_health_command(commands)
    from lowvram_r1.cli.smoke import add_arguments as add_smoke_arguments

    add_smoke_arguments(commands.add_parser("smoke", help="GPU smoke test: 5 GRPO steps with Unsloth + vLLM, checked"))
    from lowvram_r1.ui.serve import add_ui_arguments

    add_ui_arguments(commands.add_parser("ui", help="the web panel: launch runs, watch them live, compare, try"))
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --num-processes` re-runs it as given
    except SystemExit as exit_request:  # argparse's --help (0) and usage errors (2), as a return code
        return int(exit_request.code or 0)
    quiet_libraries(args.verbose)
    from lowvram_r1.cli.health import cmd_health
    from lowvram_r1.cli.info import INFO_HANDLERS
    from lowvram_r1.cli.recipes_cmd import cmd_recipes
    from lowvram_r1.tasks import TaskDataError

    handlers = {
        "train": cmd_train,
        "smoke": cmd_smoke,
        "ui": cmd_ui,
        "recipes": cmd_recipes,
        "health": cmd_health,
        **INFO_HANDLERS,
    }
    try:
        if args.command in handlers:
            return handlers[args.command](args)
        if args.command == "plan":
            from lowvram_r1.cli.plan import cmd_plan

            print(cmd_plan(args, overrides_from(args)))
            return 0
        from lowvram_r1.cli.stages import HANDLERS

        if not args.verbose:
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
        print(json.dumps(HANDLERS[args.command](args, overrides_from), indent=1, default=str))
        return 0
    except (ValueError, TaskDataError) as error:
        print(f"lowvram-r1: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lowvram-r1 runs | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
