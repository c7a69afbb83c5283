"""Panel speed on a big run: first paint of the live view with 100,000 completion records, and refreshes.

    python bench/panel.py [--records 100000] [--per-step 32] [--appends 1000 10000]

Builds a synthetic run directory (completion records shaped like the recorder's, matching metrics lines), then
times the functions the panel's callbacks call (``Panel.live``, which computes the run's health findings too, and
``Panel.runs_table``): the first paint (a fresh panel reading everything) must take at most 2 s; a refresh after N
appended records must cost in proportion to N, not to the run's size. Prints each figure and the ratios.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lowvram_r1.runs import RunDir, append_jsonl  # noqa: E402
from lowvram_r1.runs.health import diagnose  # noqa: E402
from lowvram_r1.ui.panel import Panel  # noqa: E402

REWARDS = ("format_reward", "equation_reward", "reflection_reward")


def completion_record(step: int, rng: random.Random) -> dict:
    nums = [rng.randint(1, 9) for _ in range(3)]
    think = " ".join(f"{a}+{b}={a + b}," for a, b in zip(nums, nums[1:], strict=False)) * rng.randint(1, 4)
    rewards = {
        "format_reward": rng.choice([0.0, 1.0]),
        "equation_reward": rng.choice([0.0, 0.0, 1.0]),
        "reflection_reward": rng.choice([0.0, 0.0, 0.0, 1.0]),
    }
    return {
        "step": step,
        "prompt": f"user: Using the numbers {nums}, create an equation that equals {sum(nums)}. Use [+ - * /].",
        "completion": f"<think>{think} wait, let me check</think><answer>{' + '.join(map(str, nums))}</answer>",
        "rewards": rewards,
        "reward": 0.1 * rewards["format_reward"] + rewards["equation_reward"],
        "advantage": rng.gauss(0, 1),
        "correct": rewards["equation_reward"] == 1.0,
    }


def metrics_record(step: int, rng: random.Random) -> dict:
    return {
        "kind": "train",
        "step": step,
        "time": time.time(),
        "step_time": 0.8,
        "loss": rng.gauss(0, 0.01),
        "reward": rng.random(),
        "reward_std": rng.random() / 2,
        "kl": rng.random() / 100,
        "completions/mean_length": rng.randint(20, 48),
        "entropy": rng.random(),
        "train_accuracy": rng.random(),
        **{f"rewards/{name}/mean": rng.random() for name in (*REWARDS, "check_reward")},
    }


def append_steps(run: RunDir, first_step: int, records: int, per_step: int, rng: random.Random) -> int:
    """Append ``records`` completion records (``per_step`` a step) and one metrics line a step; the next step."""
    step = first_step
    for start in range(0, records, per_step):
        count = min(per_step, records - start)
        append_jsonl(run.completions, [completion_record(step, rng) for _ in range(count)])
        append_jsonl(run.metrics, [metrics_record(step, rng)])
        step += 1
    return step


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls (the machine is shared: the minimum is the least disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--per-step", type=int, default=32)
    parser.add_argument("--appends", type=int, nargs="+", default=[1_000, 10_000])
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        run = RunDir(root / "big")
        run.path.mkdir(parents=True)
        run.write_status(state="running", step=0, max_steps=10**6, task="countdown", model="tiny", pid=None)
        next_step = append_steps(run, 1, args.records, args.per_step, rng)
        size_mb = run.completions.stat().st_size / 1e6
        print(f"run: {args.records:,} completion records ({size_mb:.1f} MB), {next_step - 1:,} metrics lines")

        def first_paint() -> None:
            panel = Panel(root, Path(tmp) / "configs")
            panel.runs_table()
            panel.live("big")

        first = timed(first_paint, repeat=3)
        print(
            f"first paint (fresh panel: runs table + live view): {first:.3f} s  (bound: 2 s) "
            f"{'OK' if first <= 2 else 'TOO SLOW'}"
        )

        panel = Panel(root, Path(tmp) / "configs")
        panel.runs_table()
        panel.live("big")
        cache = panel.cache("big")
        health = timed(lambda: diagnose(cache), repeat=3)
        print(f"  of which run health (every finding over {len(cache.index):,} records): {1000 * health:.1f} ms")
        idle = timed(lambda: (panel.runs_table(), panel.live("big")), repeat=5)
        print(f"refresh with nothing new: {1000 * idle:.1f} ms")
        reads, totals = {}, {}
        for n in args.appends:
            rounds = []
            for _ in range(3):  # best of three appends of n records each: the machine is shared, timings are noisy
                next_step = append_steps(run, next_step, n, args.per_step, rng)
                started = time.perf_counter()
                panel.cache("big").refresh()  # what live() does first: read the new bytes
                read = time.perf_counter() - started
                panel.runs_table()
                view = panel.live("big")  # the rest: plots rebuilt (<= 1500 points a series), cards read by offset
                rounds.append((read, time.perf_counter() - started))
                assert view.steps[1] == next_step - 1, "the refresh must see the appended records"
            reads[n], totals[n] = min(r for r, _ in rounds), min(t for _, t in rounds)
            print(
                f"refresh after {n:,} new records: {1000 * totals[n]:.1f} ms in all = reading them "
                f"{1000 * reads[n]:.1f} ms ({1e6 * reads[n] / n:.1f} µs a record) + repaint "
                f"{1000 * (totals[n] - reads[n]):.1f} ms (plots: at most 1500 points a series)"
            )
        small, large = min(reads), max(reads)
        if small != large:
            print(
                f"ratio: {large / small:.0f}x the new records -> {reads[large] / reads[small]:.1f}x the reading time;"
                f" a full re-read of the {args.records:,}+ records would cost the first paint each time"
            )
    return 0 if first <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
