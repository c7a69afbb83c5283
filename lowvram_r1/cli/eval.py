"""``lowvram-r1 eval``: held-out accuracy, pass@k and maj@k of a model (+ adapter), written to eval.json.

    lowvram-r1 eval --task countdown --model tiny --adapter runs/NAME/adapter --samples 4

Thin, as every stage command: its flags become a RunConfig (the same generated flags as ``train``) and the library
does the rest; the result is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lowvram_r1.cli.flags import MAX_ROWS, add_stage_flags, count, stage_config
from lowvram_r1.cli.output import hide_weight_loading_bars, print_result
from lowvram_r1.runs import RunDir


def add(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser("eval", help="held-out accuracy, pass@k, maj@k of a model (+ adapter)")
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
    add_stage_flags(evaluate)


def run(args: argparse.Namespace) -> int:
    hide_weight_loading_bars(args)
    return print_result(eval_result(args))


def eval_result(args: argparse.Namespace) -> dict[str, Any]:
    """What ``eval`` prints (and writes to eval.json)."""
    from lowvram_r1.run_plan import resolve
    from lowvram_r1.train.evaluate import check_retrieval_switch, evaluate, load_for_inference, task_generator

    plan = resolve(stage_config(args))
    cfg, task = plan.cfg, plan.task
    check_retrieval_switch(task, not args.no_retrieval)  # before the model loads
    from lowvram_r1.rewards.weighted import reward_list

    rewards = reward_list(task, cfg.task, cfg.generation.max_completion_length)  # the run's list: its monitors
    rows = plan.rows(args.split, args.limit)
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
