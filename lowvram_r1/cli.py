"""``lowvram-r1``: the command line. A thin shell: flags come from the config dataclasses, choices from TASKS.

    lowvram-r1 train --task countdown --model tiny          # the offline CPU demo
    lowvram-r1 train --config configs/cpu-demo.yaml --max-steps 20
    lowvram-r1 train --output-dir runs/NAME --resume        # continue a run from its last checkpoint
    lowvram-r1 tasks                                        # tasks, their rewards and weights
    lowvram-r1 runs                                         # run directories: status, step, reward, accuracy

Bad input exits with code 2 and one line saying what to do, before any model loads.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from lowvram_r1 import __version__, config

EXIT_BAD_INPUT = 2


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


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
        if choices:
            kwargs["choices"] = choices
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
    train.add_argument("--config", help="recipe YAML (see configs/)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(train)

    commands.add_parser("tasks", help="list tasks with their reward functions and weights")
    runs = commands.add_parser("runs", help="list run directories")
    runs.add_argument("--root", default="runs", help="folder holding run directories (default: runs)")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    return {key[4:]: value for key, value in vars(args).items() if key.startswith("cfg:") and value is not None}


def cmd_train(args: argparse.Namespace) -> int:
    overrides = overrides_from(args)
    recipe = args.config
    output_dir = overrides.get("run.output_dir")
    if overrides.get("run.resume") and output_dir and not recipe and (Path(output_dir) / "config.yaml").is_file():
        recipe = str(Path(output_dir) / "config.yaml")  # resume with the run's own config, flags on top
    cfg = config.load(recipe, overrides)
    from lowvram_r1 import engine

    summary = engine.train(cfg, progress=not args.no_progress)
    print_summary(summary)
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_summary(summary: dict[str, Any]) -> None:
    before, after = summary["accuracy_before"], summary["accuracy_after"]
    gain = f" ({100 * (after - before):+.1f} points)" if before is not None and after is not None else ""
    print(f"\nRun {summary['state']} after {summary['steps']} steps in {summary['wall_seconds'] / 60:.1f} min")
    print(f"  reward (first -> last 10% of steps): {_num(summary['reward_start'])} -> {_num(summary['reward_end'])}")
    print(f"  held-out accuracy on {summary['eval_rows']} problems: {_pct(before)} -> {_pct(after)}{gain}")
    print(f"  run directory: {summary['run_dir']}  (lowvram-r1 runs)")


def cmd_tasks(args: argparse.Namespace) -> int:
    from lowvram_r1.tasks import TASKS

    for name, task in sorted(TASKS.items()):
        print(f"{name}: {task.description}")
        for fn, weight in zip(task.reward_funcs, task.reward_weights, strict=True):
            print(f"    {weight:>5.2f}  {fn.__name__}")
        if task.default_options:
            print("    options: " + ", ".join(f"{k}={v}" for k, v in task.default_options.items()))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from lowvram_r1.runs import list_runs, summarize

    rows = [summarize(run) for run in list_runs(args.root)]
    if not rows:
        print(f"no runs under {args.root}/")
        return 0
    print(f"{'run':<44} {'status':<9} {'step':>9} {'reward':>7} {'accuracy':>15}")
    for r in rows:
        step = f"{r['step']}/{r['max_steps'] or '?'}"
        accuracy = f"{_pct(r['accuracy_start'])} -> {_pct(r['accuracy'])}" if r["accuracy"] is not None else "-"
        print(f"{r['name']:<44} {r['status']:<9} {step:>9} {_num(r['reward']):>7} {accuracy:>15}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        logging.getLogger("lowvram_r1").setLevel(logging.INFO)
    from lowvram_r1.tasks import TaskDataError

    handlers = {"train": cmd_train, "tasks": cmd_tasks, "runs": cmd_runs}
    try:
        return handlers[args.command](args)
    except (ValueError, TaskDataError) as error:
        print(f"lowvram-r1: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
