"""``lowvram-r1 pipeline``: chained stages, each a run directory (SFT -> GRPO -> sample -> SFT -> GRPO by default).
"""

from __future__ import annotations

def cmd_pipeline(args: argparse.Namespace, overrides_from: Any) -> dict[str, Any]:
    from lowvram_r1.pipeline.chain import run_pipeline

    cfg = _config(args, overrides_from)
    root = cfg.run.output_dir or "runs/pipeline"
    return run_pipeline(
        cfg, args.sft_data, root, args.n, args.limit, args.sft_steps, progress=not args.no_progress, stages=args.stages
    )
