"""``lowvram-r1 sft``: cold-start SFT (LoRA) on reasoning traces; writes a run directory.

lowvram-r1 sft --task countdown --data traces.jsonl --max-steps 200
"""

from __future__ import annotations

import argparse
from typing import Any

from lowvram_r1.cli.flags import add_stage_flags, stage_config
from lowvram_r1.cli.output import hide_weight_loading_bars, print_result


def add(subparsers: argparse._SubParsersAction) -> None:
    sft = subparsers.add_parser("sft", help="cold-start SFT (LoRA) on reasoning traces; writes a run directory")
    sft.add_argument("--data", required=True, help="jsonl/parquet file or hub id with chat-formatted traces")
    sft.add_argument("--gpu-memory", help="plan for this much GPU memory instead of the detected amount")
    sft.add_argument("--force", action="store_true", help="train even when the plan says it will not fit")
    add_stage_flags(sft)


def run(args: argparse.Namespace) -> int:
    hide_weight_loading_bars(args)
    return print_result(sft_result(args))


def sft_result(args: argparse.Namespace) -> dict[str, Any]:
    from lowvram_r1.pipeline.sft import train_sft

    cfg = stage_config(args)
    return train_sft(cfg, args.data, progress=not args.no_progress, gpu_memory=args.gpu_memory, force=args.force)
