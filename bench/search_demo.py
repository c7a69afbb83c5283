"""The offline search demo on CPU: the built-in tiny model, cold-start SFT on search traces (its build), then GRPO
on ``search_r1``; held-out exact match with the retriever and with retrieval switched off, before and after GRPO.

    python bench/search_demo.py                      # the search-demo recipe; prints the table below
    python bench/search_demo.py --max-steps 50       # shorter

The questions are about an invented world (people, cities, companies, countries), so without retrieval no model
can know the answers: the "off" column is what the model guesses, the "on" column what it finds. Every number is
``lowvram-r1 eval`` on the same held-out questions (greedy), so the four cells differ only in the model and the
retriever; the commands are printed with the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lowvram_r1.cli import main as cli
from lowvram_r1.recipes import PACKAGE_RECIPES

RECIPE = PACKAGE_RECIPES / "search-demo.yaml"


def evaluate(recipe: Path, out: Path, adapter: Path | None, retrieval: bool, limit: int) -> dict:
    args = ["eval", "--config", str(recipe), "--limit", str(limit), "--out", str(out), "--samples", "1"]
    args += ["--adapter", str(adapter)] if adapter else []
    args += [] if retrieval else ["--no-retrieval"]
    sys.stdout.write("$ lowvram-r1 " + " ".join(args) + "\n")
    if cli(args) != 0:
        raise SystemExit(f"eval failed: {' '.join(args)}")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=RECIPE)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/search-demo"))
    parser.add_argument("--max-steps", type=int, help="GRPO steps (default: the recipe's)")
    parser.add_argument("--eval-only", action="store_true", help="evaluate an existing --output-dir run again")
    parser.add_argument("--limit", type=int, default=200, help="held-out questions to evaluate")
    args = parser.parse_args(argv)
    out = args.output_dir
    started = time.monotonic()
    train = ["train", "--config", str(args.config), "--output-dir", str(out), "--no-progress"]
    train += ["--max-steps", str(args.max_steps)] if args.max_steps else []
    if not args.eval_only:
        sys.stdout.write("$ lowvram-r1 " + " ".join(train) + "\n")
        if cli(train) != 0:
            raise SystemExit("training failed")
    trained = time.monotonic() - started
    cells = {
        (stage, retrieval): evaluate(
            args.config, out / f"eval-{stage}-{'on' if retrieval else 'off'}.json", adapter, retrieval, args.limit
        )
        for stage, adapter in (("sft", None), ("grpo", out / "adapter"))
        for retrieval in (True, False)
    }
    steps = json.loads((out / "status.json").read_text()).get("step")
    rows = [
        "| model | EM, retrieval on | EM, retrieval off | a gold passage retrieved | answer in retrieved text |",
        "|---|---|---|---|---|",
    ]
    for stage, name in (("sft", "cold-start SFT (the tiny model's build)"), ("grpo", f"after {steps} GRPO steps")):
        on, off = cells[(stage, True)], cells[(stage, False)]
        hit, seen = on.get("monitor/retrieval_hit", 0.0), on.get("monitor/answer_in_retrieved", 0.0)
        rows.append(f"| {name} | {on['accuracy']:.1%} | {off['accuracy']:.1%} | {hit:.1%} | {seen:.1%} |")
    n = int(cells[("sft", True)]["n"])
    sys.stdout.write("\n" + "\n".join(rows) + "\n")
    trained_note = "" if args.eval_only else f"; tiny build + GRPO run {trained / 60:.1f} min"
    sys.stdout.write(
        f"\n{n} held-out questions, greedy{trained_note}; total {(time.monotonic() - started) / 60:.1f} min\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
