"""``lowvram-r1 sample``: rejection sampling, keeping the correct, well-formatted completions.
"""

from __future__ import annotations

def cmd_sample(args: argparse.Namespace, overrides_from: Any) -> dict[str, Any]:
    from lowvram_r1.pipeline.sampling import rejection_sample, write_samples
    from lowvram_r1.tasks import Split, get_task
    from lowvram_r1.tasks.base import PromptFormat
    from lowvram_r1.train.evaluate import load_for_inference, task_generator

    cfg = _config(args, overrides_from)
    task = get_task(cfg.task.name)
    fmt = PromptFormat(cfg.task.prompt_style, cfg.task.system_prompt, cfg.task.assistant_prefill)
    rows = task.build_rows(
        Split("train", args.limit, cfg.task.data_seed, cfg.task.data_path, dict(cfg.task.options)), fmt
    )
    model, tokenizer = load_for_inference(cfg, args.adapter)
    generator = task_generator(task, dict(cfg.task.options), model, tokenizer)  # search tasks search
    g = cfg.generation
    kept, stats = rejection_sample(
        model, tokenizer, task, rows, args.n, g.max_completion_length, g.temperature, generator
    )
    stats_file = write_samples(kept, stats, Path(args.out))
    return {**stats.__dict__, "written_to": args.out, "stats": str(stats_file)}
