"""``lowvram-r1 sample``: rejection sampling, keeping the correct, well-formatted completions.

lowvram-r1 sample --task countdown --model runs/NAME/merged-16bit --n 8 --limit 500 --out samples.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lowvram_r1.cli.flags import MAX_ROWS, add_stage_flags, count, stage_config
from lowvram_r1.cli.output import hide_weight_loading_bars, print_result


def add(subparsers: argparse._SubParsersAction) -> None:
    sample = subparsers.add_parser("sample", help="rejection sampling: keep correct, well-formatted completions")
    sample.add_argument("--adapter", help="a LoRA adapter folder on top of --model")
    sample.add_argument("--n", type=count(1, 1024), default=8, help="completions per prompt (default 8)")
    sample.add_argument(
        "--limit", type=count(1, MAX_ROWS), default=500, help="prompts from the train split (default 500)"
    )
    sample.add_argument("--out", default="samples.jsonl", help="output .jsonl or .parquet (stats beside it)")
    add_stage_flags(sample)


def run(args: argparse.Namespace) -> int:
    hide_weight_loading_bars(args)
    return print_result(sample_result(args))


def sample_result(args: argparse.Namespace) -> dict[str, Any]:
    from lowvram_r1.pipeline.sampling import rejection_sample, write_samples
    from lowvram_r1.run_plan import resolve
    from lowvram_r1.train.evaluate import load_for_inference, task_generator

    plan = resolve(stage_config(args))
    cfg, task = plan.cfg, plan.task
    rows = plan.rows("train", args.limit)
    model, tokenizer = load_for_inference(plan, args.adapter)
    generator = task_generator(task, dict(plan.options), model, tokenizer)  # search tasks search
    g = cfg.generation
    kept, stats = rejection_sample(
        model, tokenizer, task, rows, args.n, g.max_completion_length, g.temperature, generator
    )
    stats_file = write_samples(kept, stats, Path(args.out))
    return {**stats.__dict__, "written_to": args.out, "stats": str(stats_file)}
