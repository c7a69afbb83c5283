"""``lowvram-r1 train``: GRPO training from a recipe and flags (defaults < --config YAML < flags).

lowvram-r1 train --task countdown --model tiny          # the offline CPU demo
lowvram-r1 train --config cpu-demo --max-steps 20
lowvram-r1 train --output-dir runs/NAME --resume        # continue a run from its last checkpoint
lowvram-r1 train --config cpu-demo --num-processes 2   # two processes (GPUs, or gloo on CPU)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from lowvram_r1 import config
from lowvram_r1.cli.flags import add_config_flags, overrides_from
from lowvram_r1.cli.output import num, pct
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.files import is_regular


def add(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="run GRPO training",
        description="Run GRPO training. Precedence: defaults < --config YAML < flags.",
    )
    train.add_argument("--config", help="a recipe name (see `lowvram-r1 recipes`, e.g. gsm8k/8gb) or a YAML file")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    from lowvram_r1.cli.plan import add_train_options

    add_train_options(train)
    add_config_flags(train)


def train_config(args: argparse.Namespace, hardware: Any) -> config.RunConfig:
    """``train``'s config: defaults < recipe < flags. The recipe is ``--config``; on ``--resume`` the run's own
    config.yaml; with no ``--model`` either, the task's recipe for ``hardware`` (the tiny model without a GPU). A
    flag the run cannot honour is refused (``combinations.check_flags_honoured``)."""
    from lowvram_r1.train.combinations import check_flags_honoured

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
    cfg = config.load(recipe, overrides)
    check_flags_honoured(cfg, overrides)
    return cfg


def run(args: argparse.Namespace) -> int:
    from lowvram_r1.backends.registry import backend_class, resolve_backend
    from lowvram_r1.models.hardware import detect_hardware
    from lowvram_r1.run_plan import resolve
    from lowvram_r1.train.distributed import launched, leave_process_group

    hardware = detect_hardware()
    cfg = train_config(args, hardware)
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
    leave_process_group()  # a launched worker: every process has written its part; nothing more is shared
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
