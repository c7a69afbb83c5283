"""Reward throughput: completions scored per second for each task's whole reward bundle (plus its check).

    python bench/rewards.py [--n 2000]

Completions are the task's gold completion and three near-misses (wrong answer, no think block, garbage), cycled,
so parsers see the mix a training batch has. Rewards run on CPU in the trainer's process between generation and
backward; at well above 1,000 completions/s they are noise next to a GRPO step.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: the tests' literal rows live there

from lowvram_r1.tasks import get_task  # noqa: E402
from tests.tasks.test_tasks import TASK_NAMES, sample  # noqa: E402


def completions_for(name: str, n: int) -> tuple[dict, list[str]]:
    row, gold, answer = sample(name)
    variants = [gold, gold.replace(answer, "17"), f"<answer>{answer}</answer>", "lorem ipsum " * 20]
    return row, [variants[i % len(variants)] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="completions per task")
    args = parser.parse_args()
    print(f"{'task':<22} {'completions/s':>14} {'ms/completion':>14}")
    for name in TASK_NAMES:
        task = get_task(name)
        row, completions = completions_for(name, args.n)
        columns = {key: [value] * len(completions) for key, value in row.items()}
        for fn in task.reward_funcs:  # warm-up: parser imports and caches
            fn(completions[:8], **{k: v[:8] for k, v in columns.items()})
        started = time.perf_counter()
        for fn in task.reward_funcs:
            fn(completions, **columns)
        for completion in completions:
            task.check(completion, row)
        seconds = time.perf_counter() - started
        print(f"{name:<22} {len(completions) / seconds:>14,.0f} {1000 * seconds / len(completions):>14.3f}")


if __name__ == "__main__":
    main()
