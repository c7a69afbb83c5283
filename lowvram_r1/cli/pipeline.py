"""``lowvram-r1 pipeline``: chained stages, each a run directory (SFT -> GRPO -> sample -> SFT -> GRPO by default).

lowvram-r1 pipeline --config cpu-demo --sft-data traces.jsonl --output-dir runs/r1
"""

from __future__ import annotations

import argparse
from typing import Any

from lowvram_r1.cli.flags import MAX_ROWS, add_stage_flags, count, stage_config
from lowvram_r1.cli.output import hide_weight_loading_bars, print_result


def add(subparsers: argparse._SubParsersAction) -> None:
    pipeline = subparsers.add_parser(
        "pipeline", help="chained stages, each a run directory: SFT -> GRPO -> sample -> SFT -> GRPO by default"
    )
    pipeline.add_argument("--sft-data", help="cold-start traces for the first SFT stage (when the chain has one)")
    pipeline.add_argument(
        "--stages",
        nargs="+",
        metavar="STAGE",
        help="the chain: sft, grpo, sample, each optionally with task options (grpo:stage=1); "
        "default: the task's own chain (r1_searcher: grpo:stage=1 grpo:stage=2), else sft grpo sample sft grpo",
    )
    pipeline.add_argument(
        "--sft-steps", type=count(1, 10_000_000), help="steps of each SFT stage (default: --max-steps)"
    )
    pipeline.add_argument("--n", type=count(1, 1024), default=8, help="completions per prompt when sampling")
    pipeline.add_argument("--limit", type=count(1, MAX_ROWS), default=200, help="prompts to sample")
    add_stage_flags(pipeline)


def run(args: argparse.Namespace) -> int:
    hide_weight_loading_bars(args)
    return print_result(pipeline_result(args))


def pipeline_result(args: argparse.Namespace) -> dict[str, Any]:
    from lowvram_r1.pipeline.chain import run_pipeline

    cfg = stage_config(args)
    root = cfg.run.output_dir or "runs/pipeline"
    return run_pipeline(
        cfg, args.sft_data, root, args.n, args.limit, args.sft_steps, progress=not args.no_progress, stages=args.stages
    )
