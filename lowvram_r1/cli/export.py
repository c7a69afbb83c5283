"""``lowvram-r1 export``: merge a run's adapter into its base model, or GGUF.

lowvram-r1 export runs/NAME --merged 16bit
"""

from __future__ import annotations

import argparse
from typing import Any

from lowvram_r1.cli.output import hide_weight_loading_bars, print_result


def add(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export", help="merge a run's adapter into its base model, or GGUF")
    export.add_argument("run_dir", help="runs/NAME")
    export.add_argument("--merged", choices=("16bit", "4bit"), default="16bit")
    export.add_argument("--gguf", metavar="QUANT", help="also GGUF (e.g. q4_k_m): needs unsloth on a CUDA GPU")
    export.add_argument("--output", help="folder for the merged model (default runs/NAME/merged-<kind>)")
    export.add_argument("--push-to-hub", metavar="REPO", help="upload the merged folder to this hub repo")


def run(args: argparse.Namespace) -> int:
    hide_weight_loading_bars(args)
    return print_result(export_result(args))


def export_result(args: argparse.Namespace) -> dict[str, Any]:
    from lowvram_r1.pipeline.export import export_gguf, export_merged, push_to_hub

    folder = export_merged(args.run_dir, args.merged, args.output)
    result: dict[str, Any] = {"merged": str(folder)}
    if args.gguf:
        result["gguf"] = str(export_gguf(args.run_dir, args.gguf))
    if args.push_to_hub:
        push_to_hub(folder, args.push_to_hub)
        result["pushed_to"] = args.push_to_hub
    return result
