"""Variants of the CPU demo (``make demo`` = ``lowvram-r1 train --config cpu-demo``) measured side by side.

    python bench/demo_variants.py                          # every variant below (tens of minutes on 2 cores)
    python bench/demo_variants.py --variants shipped,bs64  # some of them
    python bench/demo_variants.py --list                   # the variants and their flags
    python bench/demo_variants.py --model DIR --variants shipped  # on another cold start (a model folder)

Each variant is the cpu-demo recipe plus a few flags. The bench trains it (``lowvram-r1 train``, one process per
variant, so each run is what the user's command does) and prints, per variant: held-out pass@1 before -> after (the
run's own evaluation: 200 puzzles, 4 samples at temperature 1), greedy accuracy before -> after on the same
puzzles, pass@1 on a **validation** split, the steps, the tokens trained on and the wall time of the train command.

Choose between variants on the validation column only: its 200 puzzles come from another seed of the same
generator, with every held-out puzzle removed, so nothing is tuned on the held-out questions. (The validation
puzzles may occur in the training stream, which covers most of the small puzzle space; the held-out ones never do.)
The tiny model is built once, from an empty cache the first time: set ``LOWVRAM_R1_CACHE`` to a private folder to
include (and time) the build. Wall times depend on the CPU and on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RECIPE = "cpu-demo"
VALIDATION_SEED = 1_000_003  # the generator's seed for the validation puzzles (the held-out split uses data_seed)
VALIDATION_SIZE = 200

# name -> (what was tried, flags on top of the cpu-demo recipe: 8 prompts x 8 completions a step, lr 2e-3 with
# cosine decay, 300 steps). "lr5e-4" is the recipe before issue 33 (4 prompts a step, lr 5e-4 constant).
SMALL = ["--batch-size", "32"]  # 4 prompts x 8 completions a step
OLD_LR = ["--learning-rate", "0.0005"]
BIG = ["--batch-size", "128"]  # 16 prompts x 8 completions a step
HUGE = ["--batch-size", "256"]  # 32 prompts x 8 completions a step
LR1E3 = ["--learning-rate", "0.001"]
CONSTANT = ["--lr-scheduler-type", "constant_with_warmup"]  # the config's default (no warm-up steps: constant)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "shipped": ("the cpu-demo recipe: 8 prompts a step, lr 2e-3, cosine decay", []),
    "lr5e-4": ("4 prompts a step, lr 5e-4 constant (the recipe before)", SMALL + OLD_LR + CONSTANT),
    "lr5e-4-cosine-400": (
        "4 prompts a step, lr 5e-4, cosine decay, 400 steps",
        [*SMALL, *OLD_LR, "--max-steps", "400"],
    ),
    "lr1e-3": ("4 prompts a step, lr 1e-3, cosine decay", [*SMALL, "--learning-rate", "0.001"]),
    "lr2e-3": ("4 prompts a step, lr 2e-3, cosine decay", SMALL),
    "bs64-lr5e-4": ("8 prompts a step, lr 5e-4 constant", OLD_LR + CONSTANT),
    "bs64-lr5e-4-cosine": ("8 prompts a step, lr 5e-4, cosine decay", OLD_LR),
    "bs64-lr1e-3": ("8 prompts a step, lr 1e-3, cosine decay", ["--learning-rate", "0.001"]),
    "steps500": ("the recipe with its cosine over 500 steps", ["--max-steps", "500"]),
    "bs128": ("16 prompts x 8 a step", BIG),
    "iter2": ("two gradient steps per rollout batch (TRL's num_iterations): 150 rollouts", ["--num-iterations", "2"]),
    "bs128-lr3e-3": ("16 prompts x 8 a step, lr 3e-3", [*BIG, "--learning-rate", "0.003"]),
    "bs128-g16": ("8 prompts x 16 a step", [*BIG, "--num-generations", "16"]),
    "bs128-g16-lr3e-3": (
        "8 prompts x 16 a step, lr 3e-3",
        [*BIG, "--num-generations", "16", "--learning-rate", "0.003"],
    ),
    # on the 3-epoch fp32 cold start (issue 33, session 5): lr 2e-3 falls there, lr 1e-3 rises
    "iter2-lr1e-3": ("two gradient steps per rollout batch, lr 1e-3", ["--num-iterations", "2", *LR1E3]),
    "bs128-lr1e-3-200": ("16 prompts x 8 a step, lr 1e-3, 200 steps", [*BIG, *LR1E3, "--max-steps", "200"]),
    "bs128-lr2e-3-200": ("16 prompts x 8 a step, lr 2e-3, 200 steps", [*BIG, "--max-steps", "200"]),
    "bs128-lr1.5e-3-200": (
        "16 prompts x 8 a step, lr 1.5e-3, 200 steps",
        [*BIG, "--learning-rate", "0.0015", "--max-steps", "200"],
    ),
    "bs128-lr7e-4-200": (
        "16 prompts x 8 a step, lr 7e-4, 200 steps",
        [*BIG, "--learning-rate", "0.0007", "--max-steps", "200"],
    ),
    "bs256-lr1e-3-100": ("32 prompts x 8 a step, lr 1e-3, 100 steps", [*HUGE, *LR1E3, "--max-steps", "100"]),
    "bs256-lr2e-3-100": ("32 prompts x 8 a step, lr 2e-3, 100 steps", [*HUGE, "--max-steps", "100"]),
    "bs128-g16-lr1e-3-200": (
        "8 prompts x 16 a step, lr 1e-3, 200 steps",
        [*BIG, "--num-generations", "16", *LR1E3, "--max-steps", "200"],
    ),
    "g16-lr1e-3": ("4 prompts x 16 a step, lr 1e-3", ["--num-generations", "16", *LR1E3]),
    "steps450-lr1e-3": ("8 prompts x 8 a step, lr 1e-3, 450 steps", [*LR1E3, "--max-steps", "450"]),
}


def cli(args: list[str], log: Path) -> float:
    """Run ``lowvram-r1 ARGS`` in a fresh process (output to ``log``); its wall seconds."""
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.call([sys.executable, "-m", "lowvram_r1.cli", *args], stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"lowvram-r1 {' '.join(args)} failed ({code}): see {log}")
    return time.monotonic() - started


def validation_rows(cfg: Any) -> list[dict[str, Any]]:
    """``VALIDATION_SIZE`` puzzles from ``VALIDATION_SEED``, none of them a held-out puzzle of the run's data seed."""
    from lowvram_r1.tasks import get_task
    from lowvram_r1.tasks.base import PromptFormat
    from lowvram_r1.tasks.countdown import generate_puzzles

    task = get_task(cfg.task.name)
    options = task.resolve_options(dict(cfg.task.options))
    held_out, _ = generate_puzzles(cfg.task.data_seed, options["test_size"], 0, options)
    taken = {(tuple(sorted(p["nums"])), p["target"]) for p in held_out}
    candidates, _ = generate_puzzles(VALIDATION_SEED, 3 * VALIDATION_SIZE, 0, options)
    rows = [p for p in candidates if (tuple(sorted(p["nums"])), p["target"]) not in taken][:VALIDATION_SIZE]
    fmt = PromptFormat(cfg.task.prompt_style, cfg.task.system_prompt, cfg.task.assistant_prefill)
    return [{**row, "prompt": task.prompt(row, fmt, options)} for row in rows]


def accuracies(cfg: Any, adapter: str | None) -> dict[str, float]:
    """Greedy accuracy on the held-out puzzles and pass@1 (the recipe's eval samples and temperature) on the
    validation puzzles, for the recipe's model plus ``adapter``."""
    import torch

    from lowvram_r1.tasks import Split, get_task
    from lowvram_r1.tasks.base import PromptFormat
    from lowvram_r1.train.evaluate import evaluate, load_for_inference

    task = get_task(cfg.task.name)
    fmt = PromptFormat(cfg.task.prompt_style, cfg.task.system_prompt, cfg.task.assistant_prefill)
    held_out = task.build_rows(Split("test", cfg.task.eval_size, cfg.task.data_seed, None, dict(cfg.task.options)), fmt)
    model, tokenizer = load_for_inference(cfg, adapter)
    g = cfg.generation
    torch.manual_seed(0)
    greedy = evaluate(model, tokenizer, task, held_out, g.max_completion_length, 0.0)
    torch.manual_seed(0)
    valid = evaluate(
        model, tokenizer, task, validation_rows(cfg), g.max_completion_length, g.eval_temperature, g.eval_samples
    )
    return {"greedy": greedy["accuracy"], "validation": valid["accuracy"]}


def held_out_evals(run: Path) -> tuple[float, float, int, int]:
    """The run's held-out pass@1 before and after training, its last step and the tokens it trained on (prompts and
    completions, TRL's ``num_tokens``), from metrics.jsonl."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("kind") == "eval"]
    tokens = [r["num_tokens"] for r in records if r.get("kind") == "train" and "num_tokens" in r]
    return evals[0]["accuracy"], evals[-1]["accuracy"], evals[-1]["step"], int(tokens[-1]) if tokens else 0


def run_variant(name: str, flags: list[str], out: Path, base: dict[str, float]) -> dict[str, Any]:
    from lowvram_r1.config import load

    run = out / name
    wall = cli(["train", "--config", RECIPE, "--no-progress", "--output-dir", str(run), *flags], out / f"{name}.log")
    before, after, steps, tokens = held_out_evals(run)
    measured = accuracies(load(run / "config.yaml"), str(run / "adapter"))
    return {
        "variant": name,
        "flags": " ".join(flags),
        "pass1": [before, after],
        "greedy": [base["greedy"], measured["greedy"]],
        "validation": [base["validation"], measured["validation"]],
        "steps": steps,
        "tokens": tokens,
        "wall_s": wall,
    }


def row_text(r: dict[str, Any]) -> str:
    (b, a), (gb, ga), (vb, va) = r["pass1"], r["greedy"], r["validation"]
    return (
        f"{r['variant']:<24} {100 * b:5.1f} -> {100 * a:5.1f} ({100 * (a - b):+5.1f})   "
        f"{100 * gb:5.1f} -> {100 * ga:5.1f}   {100 * vb:5.1f} -> {100 * va:5.1f}   "
        f"{r['steps']:>5}  {r['tokens'] / 1e6:5.2f}M  {r['wall_s'] / 60:5.1f} min"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names (default: all)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/demo-variants"))
    parser.add_argument(
        "--model", help="another cold start: a model folder (e.g. a tiny build with another seed) for every variant"
    )
    parser.add_argument("--list", action="store_true", help="print the variants and their flags, run nothing")
    args = parser.parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if args.list or unknown:
        for name, (what, flags) in VARIANTS.items():
            sys.stdout.write(f"{name:<24} {what}: {' '.join(flags) or '(none)'}\n")
        return 2 if unknown else 0
    from lowvram_r1.config import load
    from lowvram_r1.recipes import resolve_config

    args.output_dir.mkdir(parents=True, exist_ok=True)
    cache = os.environ.get("LOWVRAM_R1_CACHE", "~/.cache/lowvram_r1")
    sys.stdout.write(f"recipe {RECIPE}, model {args.model or 'tiny'}, cache {cache}, {os.cpu_count()} CPUs\n")
    started = time.monotonic()
    model = ["--model", args.model] if args.model else []
    recipe = load(resolve_config(RECIPE), {"model": args.model} if args.model else None)
    base = accuracies(recipe, None)  # builds the tiny model when the cache is empty
    sys.stdout.write(
        f"cold-start model: greedy {100 * base['greedy']:.1f}%, validation pass@1 {100 * base['validation']:.1f}% "
        f"({time.monotonic() - started:.0f}s, the tiny model's build included when the cache was empty)\n"
    )
    header = f"{'variant':<24} {'held-out pass@1':<25} {'greedy':<17} {'validation':<17} steps  tokens  wall (train)"
    sys.stdout.write(header + "\n")
    results = []
    for name in names:
        result = run_variant(name, [*VARIANTS[name][1], *model], args.output_dir, base)
        results.append(result)
        sys.stdout.write(row_text(result) + "\n")
        sys.stdout.flush()
    (args.output_dir / "variants.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
