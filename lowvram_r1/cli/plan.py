"""``lowvram-r1 plan``: will this config fit my GPU? The planned peak, component by component, and a verdict.

    lowvram-r1 plan --model Qwen/Qwen2.5-1.5B-Instruct --task gsm8k --gpu-memory 8GB
    lowvram-r1 plan --config gsm8k/8gb --gpu-memory 6GB --auto-fit    # shrink it until it fits
    lowvram-r1 plan --config gsm8k/8gb --json

Also the options ``train`` gets: ``--auto-fit``, ``--force`` and ``--gpu-memory`` (``memory.fit.fit_for_training``).
No torch here: planning reads config files and the built-in table only, so it works offline in a second.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from lowvram_r1 import config
from lowvram_r1.cli.flags import add_config_flags, overrides_from
from lowvram_r1.memory import planner
from lowvram_r1.memory.fit import changes, shrink_to_fit
from lowvram_r1.run_plan import resolve


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plan", help="planned peak GPU memory of a config, and whether it fits")
    parser.add_argument("--config", help="a recipe name (see `lowvram-r1 recipes`, e.g. gsm8k/8gb) or a YAML file")
    parser.add_argument("--gpu-memory", help="the GPU's memory, e.g. 8GB (omit for the breakdown only)")
    parser.add_argument("--auto-fit", action="store_true", help="shrink batch/group/lengths/rank until it fits")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_config_flags(parser)


def add_train_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpu-memory", help="plan for this much GPU memory instead of the detected amount")
    parser.add_argument("--auto-fit", action="store_true", help="shrink the config until its plan fits the GPU")
    parser.add_argument("--force", action="store_true", help="train even when the plan says it will not fit")


def run(args: argparse.Namespace) -> int:
    print(plan_text(args, overrides_from(args)))
    return 0


def plan_text(args: argparse.Namespace, overrides: dict[str, Any]) -> str:
    """The text ``lowvram-r1 plan`` prints."""
    run = resolve(config.load(args.config, overrides))  # the task found once; the planner reads the plan
    cfg = run.cfg
    budget = planner.parse_gb(args.gpu_memory) if args.gpu_memory else None
    flags: list[str] = []
    if args.auto_fit:
        if budget is None:
            raise ValueError("--auto-fit needs --gpu-memory, e.g. --gpu-memory 8GB")
        fitted = shrink_to_fit(run, budget)
        flags, run = changes(cfg, fitted), run.with_config(fitted)
    planned = planner.plan(run, budget)
    if args.json:
        return json.dumps({**planned.to_dict(), "auto_fit_flags": flags}, indent=1)
    text = planned.render()
    if args.auto_fit:
        text += "\n\nauto-fit: " + (" ".join(flags) if flags else "no change needed")
    elif planned.fits is False:
        text += f"\n\nTo fit: add --auto-fit (to plan or train) for {budget:g} GB"
    return text
