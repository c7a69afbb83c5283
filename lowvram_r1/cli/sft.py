"""``lowvram-r1 sft``: cold-start SFT (LoRA) on reasoning traces; writes a run directory.
"""

from __future__ import annotations

def cmd_sft(args: argparse.Namespace, overrides_from: Any) -> dict[str, Any]:
    from lowvram_r1.pipeline.sft import train_sft

    cfg = _config(args, overrides_from)
    return train_sft(cfg, args.data, progress=not args.no_progress, gpu_memory=args.gpu_memory, force=args.force)
