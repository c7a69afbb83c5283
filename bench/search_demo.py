"""The offline search demo on CPU: the built-in tiny model, cold-start SFT on search traces (its build), then GRPO
on ``search_r1``; held-out exact match with the retriever and with retrieval switched off, before and after GRPO.

    python bench/search_demo.py                      # the search-demo recipe; prints the table below and the times
    python bench/search_demo.py --validation         # ... and exact match on the validation questions
    python bench/search_demo.py --max-steps 50 -- --learning-rate 0.001    # a variant: flags after -- go to train
    python bench/search_demo.py --task-option trace_fact=asked --output-dir runs/search-asked   # a recipe variant

The questions are about an invented world (people, cities, companies, countries), so without retrieval no model
can know the answers: the "off" column is what the model guesses, the "on" column what it finds. Every number is
``lowvram-r1 eval`` on the same held-out questions (greedy), so the four cells differ only in the model and the
retriever; the commands are printed with the table. Phases are timed apart: the tiny model's build (from an empty
``$LOWVRAM_R1_CACHE``: its tokenizer and the cold-start SFT), GRPO, each evaluation. ``--validation`` adds greedy
exact match (retrieval on) on the recipe's validation questions (task option ``validation_size``: the questions
after the held-out ones, kept out of training), before and after GRPO: choose variants on that figure, never on the
held-out table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from lowvram_r1.cli import main as cli
from lowvram_r1.recipes import PACKAGE_RECIPES

RECIPE = PACKAGE_RECIPES / "search-demo.yaml"


def timed(label: str, times: dict[str, float], fn: Any, *args: Any) -> Any:
    started = time.monotonic()
    result = fn(*args)
    times[label] = time.monotonic() - started
    return result


def variant_recipe(recipe: Path, options: list[str], out: Path) -> Path:
    """``recipe`` with task options changed (``KEY=VALUE``, a YAML value), written beside the run; else itself."""
    if not options:
        return recipe
    import yaml

    data = yaml.safe_load(recipe.read_text())
    for option in options:
        key, _, value = option.partition("=")
        data["task"].setdefault("options", {})[key] = yaml.safe_load(value)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_name(f"{out.name}-recipe.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def build(recipe: Path) -> str:
    """The recipe's tiny model, built (tokenizer, cold-start SFT) when the cache does not hold it yet."""
    from lowvram_r1 import config
    from lowvram_r1.run_plan import resolve

    return resolve(config.load(recipe)).model_path()


def evaluate(recipe: Path, out: Path, adapter: Path | None, retrieval: bool, limit: int) -> dict:
    args = ["eval", "--config", str(recipe), "--limit", str(limit), "--out", str(out), "--samples", "1"]
    args += ["--adapter", str(adapter)] if adapter else []
    args += [] if retrieval else ["--no-retrieval"]
    sys.stdout.write("$ lowvram-r1 " + " ".join(args) + "\n")
    if cli(args) != 0:
        raise SystemExit(f"eval failed: {' '.join(args)}")
    return json.loads(out.read_text())


def answers(recipe: Path, adapter: Path | None, split: str, size: int) -> list[tuple[str, bool]]:
    """Per question of ``split`` ("test": the held-out ones; "validation": the recipe's validation questions, none
    held out, none trained on): its kind (the question with its entity's name replaced by X) and whether the
    model's greedy answer, retrieval on, is right."""
    import torch

    from lowvram_r1 import config
    from lowvram_r1.run_plan import resolve
    from lowvram_r1.train.evaluate import load_for_inference, task_generator

    plan = resolve(config.load(recipe))
    if split == "validation":
        size = int(plan.options.get("validation_size", 0))
        if not size:
            raise SystemExit(f"--validation: {recipe} sets no task option validation_size")
    rows = plan.rows(split, size)
    model, tokenizer = load_for_inference(plan, str(adapter) if adapter else None)
    generator = task_generator(plan.task, dict(plan.options), model, tokenizer)
    with torch.no_grad():
        completions = generator([r["prompt"] for r in rows], plan.cfg.generation.max_completion_length, 0.0)
    return [
        (row["question"].replace(row["gold_titles"][0], "X"), bool(plan.task.check(completion, row)))
        for row, completion in zip(rows, completions, strict=True)
    ]


def by_kind(results: dict[str, list[tuple[str, bool]]]) -> list[str]:
    """A table of exact match per kind of question, one column per result (same questions in each)."""
    names = list(results)
    kinds = sorted({kind for kind, _ in results[names[0]]})
    lines = ["| question | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for kind in kinds:
        counts = [sum(right for k, right in results[name] if k == kind) for name in names]
        n = sum(1 for k, _ in results[names[0]] if k == kind)
        lines.append(f"| {kind} | {n} | " + " | ".join(str(c) for c in counts) + " |")
    return lines


def table(cells: dict[tuple[str, bool], dict], steps: Any) -> list[str]:
    rows = [
        "| model | EM, retrieval on | EM, retrieval off | a gold passage retrieved | answer in retrieved text |",
        "|---|---|---|---|---|",
    ]
    for stage, name in (("sft", "cold-start SFT (the tiny model's build)"), ("grpo", f"after {steps} GRPO steps")):
        on, off = cells[(stage, True)], cells[(stage, False)]
        hit, seen = on.get("monitor/retrieval_hit", 0.0), on.get("monitor/answer_in_retrieved", 0.0)
        rows.append(f"| {name} | {on['accuracy']:.1%} | {off['accuracy']:.1%} | {hit:.1%} | {seen:.1%} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=RECIPE)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/search-demo"))
    parser.add_argument("--max-steps", type=int, help="GRPO steps (default: the recipe's)")
    parser.add_argument("--eval-only", action="store_true", help="evaluate an existing --output-dir run again")
    parser.add_argument("--limit", type=int, default=200, help="held-out questions to evaluate")
    parser.add_argument("--validation", action="store_true", help="also exact match on the validation questions")
    parser.add_argument("--task-option", action="append", default=[], help="KEY=VALUE: a recipe variant's task option")
    parser.add_argument("train_flags", nargs="*", help="after --: more flags for lowvram-r1 train (a variant)")
    args = parser.parse_args(argv)
    out, times = args.output_dir, {}
    args.config = variant_recipe(args.config, args.task_option, out)
    started = time.monotonic()
    sys.stdout.write(f"recipe {args.config}, cache {os.environ.get('LOWVRAM_R1_CACHE', '~/.cache/lowvram_r1')}\n")
    sys.stdout.write(f"tiny model: {timed('build', times, build, args.config)}\n")
    train = ["train", "--config", str(args.config), "--output-dir", str(out), "--no-progress", *args.train_flags]
    train += ["--max-steps", str(args.max_steps)] if args.max_steps else []
    if not args.eval_only:
        sys.stdout.write("$ lowvram-r1 " + " ".join(train) + "\n")
        if timed("GRPO", times, cli, train) != 0:
            raise SystemExit("training failed")
    cells = {}
    for stage, adapter in (("sft", None), ("grpo", out / "adapter")):
        for retrieval in (True, False):
            name = f"{stage}-{'on' if retrieval else 'off'}"
            cells[(stage, retrieval)] = timed(
                f"eval {name}", times, evaluate, args.config, out / f"eval-{name}.json", adapter, retrieval, args.limit
            )
    splits = [("test", "held-out")] + ([("validation", "validation")] if args.validation else [])
    per_question = {
        f"{label} {stage}": timed(f"{label} {stage}", times, answers, args.config, adapter, split, args.limit)
        for split, label in splits
        for stage, adapter in (("sft", None), ("grpo", out / "adapter"))
    }
    steps = json.loads((out / "status.json").read_text()).get("step")
    sys.stdout.write("\n" + "\n".join(table(cells, steps)) + "\n")
    n = int(cells[("sft", True)]["n"])
    sys.stdout.write("\nRight answers per kind of question (greedy, retrieval on):\n")
    sys.stdout.write("\n".join(by_kind(per_question)) + "\n")
    if args.validation:
        before, after = (per_question[f"validation {stage}"] for stage in ("sft", "grpo"))
        em = [sum(right for _, right in rows) / len(rows) for rows in (before, after)]
        sys.stdout.write(
            f"\nvalidation ({len(before)} questions, greedy, retrieval on): EM {em[0]:.1%} -> {em[1]:.1%} "
            f"({100 * (em[1] - em[0]):+.1f} points)\n"
        )
    sys.stdout.write(f"\n{n} held-out questions, greedy. Times (min): ")
    sys.stdout.write(", ".join(f"{label} {seconds / 60:.1f}" for label, seconds in times.items()))
    sys.stdout.write(f"; total {(time.monotonic() - started) / 60:.1f}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
