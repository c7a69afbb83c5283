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


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _bool_or_choice(choices: tuple) -> Any:
    """The flag type of a ``bool | str`` field: a true/false word, or one of the field's other choices."""

    def parse(text: str) -> bool | str:
        if text.lower() in choices:
            return text.lower()
        try:
            return _parse_bool(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected {config.spoken(choices)}, got {text!r}") from None

    return parse


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, help and choices from the dataclass metadata; default None = not given."""
    from lowvram_r1.tasks import TASKS

    for section, field in config.all_fields():
        if field.name == "options":
            continue  # a mapping: YAML only
        flag = "--" + config.flag_name(section, field)
        kind = str(field.type)
        kwargs: dict[str, Any] = {"default": None, "help": f"[{section}] {field.metadata.get('help', '')}"}
        choices = field.metadata.get("choices")
        if flag == "--task":
            choices = None  # checked later so the error can list tasks (exit 2) rather than argparse's wording
            kwargs["help"] += f" ({', '.join(sorted(TASKS))})"
        if field.name == "rewards":  # --reward SPEC[=WEIGHT], repeatable
            from lowvram_r1.cli.rewards import argparse_type
            from lowvram_r1.rewards.weighted import parse_reward_flag

            kwargs.update(action="append", type=argparse_type(parse_reward_flag), metavar="SPEC[=WEIGHT]")
            parser.add_argument(flag, dest=f"cfg:{section}.{field.name}", **kwargs)
            continue
        if kind == "bool | str":  # e.g. --gradient-checkpointing true|false|offload (alone: true)
            words = ",".join(str(c).lower() for c in choices)
            kwargs.update(nargs="?", const=True, type=_bool_or_choice(choices), metavar=f"{{{words}}}")
            parser.add_argument(flag, dest=f"cfg:{section}.{field.name}", **kwargs)
            continue
        if choices:
            kwargs["choices"] = choices
        if not kind.startswith("bool"):
            kwargs["metavar"] = flag[2:].upper().replace("-", "_")
        if kind.startswith("bool"):
            kwargs.update(nargs="?", const=True, type=_parse_bool, metavar="BOOL")
        elif kind.startswith("int"):
            kwargs["type"] = int
        elif kind.startswith("float"):
            kwargs["type"] = float
        elif kind.startswith("list[float]"):
            kwargs.update(nargs="+", type=float)
        parser.add_argument(flag, dest=f"cfg:{section}.{field.name}", **kwargs)


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


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {key[4:]: value for key, value in vars(args).items() if key.startswith("cfg:") and value is not None}
    if "task.rewards" in overrides:  # --reward pairs, repeated: a mapping laid over the recipe's
        overrides["task.rewards"] = dict(overrides["task.rewards"])
    return overrides


def train_config(args: argparse.Namespace, hardware: Any) -> config.RunConfig:
    """``train``'s config: defaults < recipe < flags. The recipe is ``--config``; on ``--resume`` the run's own
    config.yaml; with no ``--model`` either, the task's recipe for ``hardware`` (the tiny model without a GPU)."""
    overrides = overrides_from(args)
    recipe = args.config
    output_dir = overrides.get("run.output_dir")
    run_config = RunDir(Path(output_dir)).config if output_dir else None
    if overrides.get("run.resume") and run_config and not recipe and is_regular(run_config):  # never a link or FIFO
        recipe = str(run_config)  # resume with the run's own config, flags on top
    if recipe is None and "model.name" not in overrides and not overrides.get("run.resume"):
        from lowvram_r1.recipes import default_recipe

        picked, reason = default_recipe(overrides.get("task.name", config.TaskSettings().name), hardware)
        recipe = str(picked) if picked else None
        logging.getLogger("lowvram_r1").info("recipe: %s (%s)", picked or "none", reason)
    return config.load(recipe, overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from lowvram_r1.backends.registry import backend_class, resolve_backend
    from lowvram_r1.models.hardware import detect_hardware
    from lowvram_r1.run_plan import resolve
    from lowvram_r1.train.combinations import check_flags_honoured
    from lowvram_r1.train.distributed import launched

    hardware = detect_hardware()
    cfg = train_config(args, hardware)
    check_flags_honoured(cfg, overrides_from(args))
    plan = resolve(cfg, hardware, backend=resolve_backend(cfg, hardware.cuda))  # the run, resolved once
    if cfg.run.num_processes > 1 and not launched():  # re-run under a launcher; its processes train
        from lowvram_r1.cli.launch import relaunch

        return relaunch(plan, args.argv)
    # a backend that must be imported before transformers (Unsloth) keeps transformers' weight-loading bars
    if not args.verbose and not backend_class(plan.backend).imports_first:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # per-file weight-loading bars; ours is the step bar
    from lowvram_r1.train import engine

    summary = engine.train(
        plan,
        progress=not args.no_progress,
        gpu_memory=args.gpu_memory,
        auto_fit=args.auto_fit,
        force=args.force,
        hardware=hardware,
    )
    if summary.get("main", True):
        print_summary(summary)
    return 0


def print_summary(summary: dict[str, Any]) -> None:
    before, after = summary["accuracy_before"], summary["accuracy_after"]
    gain = f" ({100 * (after - before):+.1f} points)" if before is not None and after is not None else ""
    print(f"\nRun {summary['state']} after {summary['steps']} steps in {summary['wall_seconds'] / 60:.1f} min")
    print(f"  reward (first -> last 10% of steps): {num(summary['reward_start'])} -> {num(summary['reward_end'])}")
    print(
        f"  held-out accuracy on {summary['eval_rows']} problems ({summary['eval_protocol']}): "
        f"{pct(before)} -> {pct(after)}{gain}"
    )
    print(f"  run directory: {summary['run_dir']}  (lowvram-r1 runs)")


def cmd_smoke(args: argparse.Namespace) -> int:
    from lowvram_r1.cli.smoke import run

    report = run(args)
    print("\n".join(report.lines()))
    print("smoke test passed" if report.passed else "smoke test FAILED")
    return 0 if report.passed else 1


def cmd_ui(args: argparse.Namespace) -> int:
    from lowvram_r1.ui.serve import cmd_ui as serve

    return serve(args)


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
