"""``lowvram-r1 export``: merge a run's adapter into its base model, or GGUF.
"""

from __future__ import annotations

def cmd_export(args: argparse.Namespace, overrides_from: Any) -> dict[str, Any]:
    from lowvram_r1.pipeline.export import export_gguf, export_merged, push_to_hub

    folder = export_merged(args.run_dir, args.merged, args.output)
    result: dict[str, Any] = {"merged": str(folder)}
    if args.gguf:
        result["gguf"] = str(export_gguf(args.run_dir, args.gguf))
    if args.push_to_hub:
        push_to_hub(folder, args.push_to_hub)
        result["pushed_to"] = args.push_to_hub
    return result
