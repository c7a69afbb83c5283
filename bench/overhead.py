"""Overhead of lowvram-r1 around TRL: the same tiny-model GRPO config through ``engine.train`` and through a bare
``trl.GRPOTrainer``, seconds per optimiser step, in interleaved pairs (bare, engine, engine, bare, ...) in one
process; prints the median of the per-pair ratios engine / bare with its spread, and the verdict against 5%.

    python bench/overhead.py                        # pairs until the ratios' IQR < 0.05 (min 6, max 24 pairs)
    python bench/overhead.py --steps 10 --max-pairs 40 --goal 0.05

What is timed is each optimiser step of ``trainer.train()`` on both sides, from one step's start to the next's:
generation, rewards, backward and optimiser step, plus, on the engine side, everything it adds inside the loop (the
run recorder's metrics/completions/status writes, the weight-0 monitoring rewards). Each run counts its fastest step
after the first (as ``timeit`` does: load from other processes only adds time, so the fastest step is the closest to
the step's own cost; on a shared machine a burst of load can slow a whole run tenfold). Both sides generate every
completion to its full length (``min_new_tokens``, set here for both): the work per step is then the same whatever
the policy samples, so the ratio measures our overhead, not two runs' different completion lengths. For the same
reason the model is the tiny model's default architecture (4 layers, 128 wide) with a token cold start: it builds in
seconds.

Why pairs: load from other processes drifts over minutes; two runs next to each other see about the same load, so
each pair's ratio cancels most of it, and the order alternates so warm-up and drift hit both sides alike. The spread
is the interquartile range of the per-pair ratios; the verdict needs the whole IQR on one side of 1.05.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lowvram_r1 import config
from lowvram_r1.config import trl_args
from lowvram_r1.models.cpu_logprob import install
from lowvram_r1.models.tiny import ensure_tiny_model, spec_for
from lowvram_r1.tasks import TASKS, Split
from lowvram_r1.tasks.base import PromptFormat
from lowvram_r1.train import engine

OPTIONS = {
    "min_numbers": 3,
    "max_numbers": 3,
    "max_number": 9,
    "max_target": 100,
    "question_style": "compact",
    "shuffle_numbers": False,
    "train_size": 2000,
    "test_size": 50,
}
COMPLETION = 48


def run_config(model: Path, steps: int, out: Path) -> config.RunConfig:
    recipe = out / "recipe.yaml"
    recipe.write_text(f"task:\n  options: {OPTIONS}\n  system_prompt: ''\n  eval_size: 0\n")
    return config.load(
        recipe,
        {
            "model": str(model),
            "max_steps": steps,
            "batch-size": 16,
            "num_generations": 8,
            "max_completion_length": COMPLETION,
            "max_prompt_length": 64,
            "learning_rate": 1e-4,
            "save_steps": 10_000,
            "output_dir": str(out / "engine"),
        },
    )


def full_length_completions() -> None:
    """Both sides build their ``GRPOConfig`` through ``config.trl_args.grpo_config_kwargs``: add ``min_new_tokens``
    there."""
    plain = trl_args.grpo_config_kwargs

    def kwargs(*args: Any, **options: Any) -> dict[str, Any]:
        values = plain(*args, **options)
        values["generation_kwargs"] = {**(values.get("generation_kwargs") or {}), "min_new_tokens": COMPLETION}
        return values

    trl_args.grpo_config_kwargs = kwargs  # type: ignore[assignment]


def bare_trl(cfg: config.RunConfig, model_path: Path, out: Path) -> tuple[float, float]:
    """The same run with nothing of ours in the loop: seconds of its fastest and of its median step (``step_timer``)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import GRPOTrainer

    from lowvram_r1.backends.hf import lora_config

    task = TASKS[cfg.task.name]
    rows = task.build_rows(Split("train", 0, 0, None, cfg.task.options), PromptFormat(system_prompt=""))
    args = config.to_grpo_config(cfg, out / "bare", use_cpu=True)
    args.save_strategy = "no"
    args.reward_weights = list(task.reward_weights)
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_path),
        reward_funcs=list(task.reward_funcs),
        args=args,
        processing_class=AutoTokenizer.from_pretrained(model_path),
        train_dataset=Dataset.from_list(rows),
        peft_config=lora_config(cfg),
    )
    trainer.remove_callback(PrinterCallback)  # the engine drops it too: compare training loops, not console output
    timer = step_timer()
    trainer.add_callback(timer)
    trainer.train()
    return timer.fastest(), timer.typical()


def ours(cfg: config.RunConfig, out: Path, index: int) -> tuple[float, float]:
    run_cfg = config.load(
        None,
        {
            **{f"{s}.{k}": v for s, fields in cfg.to_dict().items() for k, v in fields.items()},
            "output_dir": str(out / f"engine-{index}"),
        },
    )
    timer = step_timer()
    engine.train(run_cfg, progress=False, callbacks=[timer])
    return timer.fastest(), timer.typical()


def step_timer() -> Any:
    """A callback timing each optimiser step from its start to the next one's (so a step includes every callback
    of the step before it: the engine's recorder writes too), the last one to the end of training."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[float] = []

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.marks.append(time.perf_counter())

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.marks.append(time.perf_counter())

        def steps(self) -> list[float]:
            steps = [b - a for a, b in itertools.pairwise(self.marks)]
            return steps[1:] or steps  # the first step is warm-up

        def fastest(self) -> float:
            """The fastest step after the first: other processes' load only ever adds time."""
            return min(self.steps())

        def typical(self) -> float:
            return statistics.median(self.steps())

    return StepTimer()


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def verdict(q1: float, q3: float, limit: float) -> str:
    if q3 <= limit:
        return f"within {limit - 1:.0%} of bare TRL (the whole IQR is at or below {limit:.2f})"
    if q1 > limit:
        return f"NOT within {limit - 1:.0%} of bare TRL (the whole IQR is above {limit:.2f})"
    return f"not resolved: the IQR straddles {limit:.2f} (more pairs, or a quieter machine)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps per run (the first is warm-up)")
    parser.add_argument("--min-pairs", type=int, default=6)
    parser.add_argument("--max-pairs", type=int, default=24)
    parser.add_argument("--goal", type=float, default=0.05, help="stop when the per-pair ratios' IQR is below this")
    parser.add_argument("--max-minutes", type=float, default=45.0, help="stop adding pairs after this long")
    args = parser.parse_args(argv)
    if args.steps < 3 or not 3 <= args.min_pairs <= args.max_pairs or args.goal <= 0:
        parser.error("need --steps >= 3, 3 <= --min-pairs <= --max-pairs, --goal > 0")
    logging.basicConfig(level=logging.WARNING)
    install()
    full_length_completions()
    # the demo's tiny architecture with a token cold start: completions are full-length, so quality is irrelevant
    model = ensure_tiny_model(spec_for("countdown", 0, OPTIONS, "chat", "", sft_examples=64, sft_epochs=1.0))

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    started = time.monotonic()
    fastest: dict[str, list[float]] = {"bare": [], "engine": []}
    ratios: list[float] = []
    typical: list[float] = []  # the same ratio from each run's median step, for comparison
    with tempfile.TemporaryDirectory() as scratch:
        cfg = run_config(model, args.steps, Path(scratch))
        for i in range(args.max_pairs):
            times = {}
            for side in ("bare", "engine") if i % 2 == 0 else ("engine", "bare"):
                folder = Path(scratch) / f"{side}-{i}"
                times[side] = bare_trl(cfg, model, folder) if side == "bare" else ours(cfg, folder, i)
                fastest[side].append(times[side][0])
            ratios.append(times["engine"][0] / times["bare"][0])
            typical.append(times["engine"][1] / times["bare"][1])
            out(f"pair {i + 1}: fastest step bare {times['bare'][0]:.3f} s, engine {times['engine'][0]:.3f} s, ")
            out(f"ratio {ratios[-1]:.3f} (median steps: {typical[-1]:.3f})\n")
            if len(ratios) >= args.min_pairs:
                q1, _, q3 = quartiles(ratios)
                if q3 - q1 < args.goal or time.monotonic() - started > 60 * args.max_minutes:
                    break
    q1, median, q3 = quartiles(ratios)
    t1, typical_median, t3 = quartiles(typical)
    out(f"\n{len(ratios)} pairs of {args.steps}-step runs in {(time.monotonic() - started) / 60:.1f} min\n")
    out(f"bare trl.GRPOTrainer : {statistics.median(fastest['bare']):.3f} s/step (median of the runs' fastest steps)\n")
    out(f"engine.train         : {statistics.median(fastest['engine']):.3f} s/step\n")
    out(
        f"ratio engine / bare  : median {median:.3f}, IQR {q1:.3f}-{q3:.3f} (width {q3 - q1:.3f}), "
        f"min-max {min(ratios):.3f}-{max(ratios):.3f}\n"
    )
    out(f"  from median steps  : median {typical_median:.3f}, IQR {t1:.3f}-{t3:.3f} (more exposed to load)\n")
    resolved = "" if q3 - q1 < args.goal else f" (spread NOT below the {args.goal:.0%} goal: load or too few pairs)"
    out(f"verdict: {verdict(q1, q3, 1 + args.goal)}{resolved}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
