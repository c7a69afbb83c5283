"""The CLI's commands for R1's other stages: ``eval``, ``sft``, ``sample``, ``export``, ``pipeline``.

    lowvram-r1 eval --task countdown --model tiny --adapter runs/NAME/adapter --samples 4
    lowvram-r1 sft --task countdown --data traces.jsonl --max-steps 200
    lowvram-r1 sample --task countdown --model runs/NAME/merged-16bit --n 8 --limit 500 --out samples.jsonl
    lowvram-r1 export runs/NAME --merged 16bit
    lowvram-r1 pipeline --config cpu-demo --sft-data traces.jsonl --output-dir runs/r1

Thin: each parses its flags into a RunConfig (the same generated flags as ``train``) and calls the library.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lowvram_r1 import config
from lowvram_r1.runs import RunDir

MAX_ROWS = 1_000_000  # rows one eval or sample command reads (procedural tasks make at most this many too)


def count(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in ``low..high`` (an error, exit 2, names the flag and the range)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {value}")
        return value

    return parse


def add_stage_commands(commands: Any, add_config_flags: Any) -> None:
    evaluate = commands.add_parser("eval", help="held-out accuracy, pass@k, maj@k of a model (+ adapter)")
    evaluate.add_argument("--adapter", help="a LoRA adapter folder (e.g. runs/NAME/adapter)")
    evaluate.add_argument("--split", default="test", choices=("test", "train"))
    evaluate.add_argument("--limit", type=count(1, MAX_ROWS), default=500, help="rows to evaluate (default 500)")
    evaluate.add_argument(
        "--samples",
        type=count(1, 1024),
        help="k completions per row for pass@k / maj@k (sampled at "
        "--eval-temperature, or at the rollout --temperature when that is 0)",
    )
    evaluate.add_argument("--out", help="where to write eval.json (default: beside the adapter, or ./eval.json)")
    evaluate.add_argument(
        "--no-retrieval",
        action="store_true",
        help="search tasks: every search comes back empty (the same model without its retriever)",
    )

    sft = commands.add_parser("sft", help="cold-start SFT (LoRA) on reasoning traces; writes a run directory")
    sft.add_argument("--data", required=True, help="jsonl/parquet file or hub id with chat-formatted traces")
    sft.add_argument("--gpu-memory", help="plan for this much GPU memory instead of the detected amount")
    sft.add_argument("--force", action="store_true", help="train even when the plan says it will not fit")

    sample = commands.add_parser("sample", help="rejection sampling: keep correct, well-formatted completions")
    sample.add_argument("--adapter", help="a LoRA adapter folder on top of --model")
    sample.add_argument("--n", type=count(1, 1024), default=8, help="completions per prompt (default 8)")
    sample.add_argument(
        "--limit", type=count(1, MAX_ROWS), default=500, help="prompts from the train split (default 500)"
    )
    sample.add_argument("--out", default="samples.jsonl", help="output .jsonl or .parquet (stats beside it)")

    export = commands.add_parser("export", help="merge a run's adapter into its base model, or GGUF")
    export.add_argument("run_dir", help="runs/NAME")
    export.add_argument("--merged", choices=("16bit", "4bit"), default="16bit")
    export.add_argument("--gguf", metavar="QUANT", help="also GGUF (e.g. q4_k_m): needs unsloth on a CUDA GPU")
    export.add_argument("--output", help="folder for the merged model (default runs/NAME/merged-<kind>)")
    export.add_argument("--push-to-hub", metavar="REPO", help="upload the merged folder to this hub repo")

    pipeline = commands.add_parser(
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

    for parser in (evaluate, sft, sample, pipeline):
        parser.add_argument("--config", help="a recipe name (lowvram-r1 recipes) or YAML file: model, task, generation")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_config_flags(parser)


def _config(args: argparse.Namespace, overrides_from: Any) -> config.RunConfig:
    return config.load(args.config, overrides_from(args))


def cmd_eval(args: argparse.Namespace, overrides_from: Any) -> dict[str, Any]:
    from lowvram_r1.evaluate import check_retrieval_switch, evaluate, load_for_inference, task_generator
    from lowvram_r1.run_plan import resolve
    from lowvram_r1.tasks import Split

    plan = resolve(_config(args, overrides_from))
    cfg, task, fmt = plan.cfg, plan.task, plan.prompt_format
    check_retrieval_switch(task, not args.no_retrieval)  # before the model loads
    from lowvram_r1.rewards.weighted import reward_list

    rewards = reward_list(task, cfg.task, cfg.generation.max_completion_length)  # the run's list: its monitors
    rows = task.build_rows(
        Split(args.split, args.limit, cfg.task.data_seed, cfg.task.data_path, dict(plan.options)), fmt
    )
    model, tokenizer = load_for_inference(plan, args.adapter)
    g = cfg.generation
    samples = args.samples or g.eval_samples
    temperature = g.eval_temperature or (g.temperature if samples > 1 else 0.0)  # k greedy samples would be equal
    generator = task_generator(task, dict(plan.options), model, tokenizer, retrieval=not args.no_retrieval)
    result = evaluate(
        model, tokenizer, task, rows, g.max_completion_length, temperature, samples, generator, rewards=rewards
    )
    result.update(task=task.name, model=cfg.model.name, adapter=args.adapter, split=args.split)
    if task.environment is not None:
        result["retrieval"] = not args.no_retrieval
    out = Path(args.out) if args.out else Path(args.adapter).parent / RunDir.EVAL if args.adapter else Path(RunDir.EVAL)
    text = json.dumps(result, indent=1, default=str)
    if args.out:
        out.write_text(text)  # a file the user named
    else:  # beside the adapter, in a run folder: never through a link (lowvram_r1.runs.files)
        from lowvram_r1.runs import write_atomic
        from lowvram_r1.runs.files import RunFileError

        try:
            write_atomic(out, text)
        except RunFileError as error:
            raise ValueError(f"{error}; or pass --out FILE") from None
    result["written_to"] = str(out)
    return result


def cmd_sft(args: argparse.Namespace, overrides_from: Any) -> dict[str, Any]:
    from lowvram_r1.pipeline.sft import train_sft

    cfg = _config(args, overrides_from)
    return train_sft(cfg, args.data, progress=not args.no_progress, gpu_memory=args.gpu_memory, force=args.force)


def cmd_sample(args: argparse.Namespace, overrides_from: Any) -> dict[str, Any]:
    from lowvram_r1.evaluate import load_for_inference, task_generator
    from lowvram_r1.pipeline.sampling import rejection_sample, write_samples
    from lowvram_r1.run_plan import resolve
    from lowvram_r1.tasks import Split

    plan = resolve(_config(args, overrides_from))
    cfg, task, fmt = plan.cfg, plan.task, plan.prompt_format
    rows = task.build_rows(Split("train", args.limit, cfg.task.data_seed, cfg.task.data_path, dict(plan.options)), fmt)
    model, tokenizer = load_for_inference(plan, args.adapter)
    generator = task_generator(task, dict(plan.options), model, tokenizer)  # search tasks search
    g = cfg.generation
    kept, stats = rejection_sample(
        model, tokenizer, task, rows, args.n, g.max_completion_length, g.temperature, generator
    )
    stats_file = write_samples(kept, stats, Path(args.out))
    return {**stats.__dict__, "written_to": args.out, "stats": str(stats_file)}


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


def cmd_pipeline(args: argparse.Namespace, overrides_from: Any) -> dict[str, Any]:
    from lowvram_r1.pipeline.chain import run_pipeline

    cfg = _config(args, overrides_from)
    root = cfg.run.output_dir or "runs/pipeline"
    return run_pipeline(
        cfg, args.sft_data, root, args.n, args.limit, args.sft_steps, progress=not args.no_progress, stages=args.stages
    )


HANDLERS = {"eval": cmd_eval, "sft": cmd_sft, "sample": cmd_sample, "export": cmd_export, "pipeline": cmd_pipeline}
