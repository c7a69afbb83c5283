"""Overhead of lowvram-r1 around TRL: the same tiny-model GRPO config through ``engine.train`` and through a bare
``trl.GRPOTrainer``, seconds per optimiser step measured side by side in one process, ratio printed.

    python bench/overhead.py [--steps 30] [--repeats 2]

What is timed is ``trainer.train()`` in both cases (the engine reports it as ``train_seconds``): generation,
rewards, backward and optimiser step, plus, on the engine side, everything it adds inside the loop (the run
recorder's metrics/completions/status writes, the weight-0 monitoring rewards). Goal: ratio <= 1.05.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from lowvram_r1 import config
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
            "max_completion_length": 48,
            "max_prompt_length": 64,
            "learning_rate": 1e-4,
            "save_steps": 10_000,
            "output_dir": str(out / "engine"),
        },
    )


def bare_trl(cfg: config.RunConfig, model_path: Path, out: Path) -> float:
    """The same run with nothing of ours in the loop; returns seconds per step."""
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
    started = time.monotonic()
    trainer.train()
    return (time.monotonic() - started) / cfg.training.max_steps


def ours(cfg: config.RunConfig, out: Path, index: int) -> float:
    run_cfg = config.load(
        None,
        {
            **{f"{s}.{k}": v for s, fields in cfg.to_dict().items() for k, v in fields.items()},
            "output_dir": str(out / f"engine-{index}"),
        },
    )
    summary = engine.train(run_cfg, progress=False)
    return summary["train_seconds"] / cfg.training.max_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    install()
    model = ensure_tiny_model(spec_for("countdown", 0, OPTIONS, "chat", ""))
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        cfg = run_config(model, args.steps, out)
        engine_times, bare_times = [], []
        for i in range(args.repeats):  # alternate A B / B A so warm-up and drift hit both sides alike
            order = [("bare", bare_trl), ("engine", None)] if i % 2 == 0 else [("engine", None), ("bare", bare_trl)]
            for name, _ in order:
                if name == "bare":
                    bare_times.append(bare_trl(cfg, model, out / f"b{i}"))
                else:
                    engine_times.append(ours(cfg, out, i))
    engine_step, bare_step = statistics.median(engine_times), statistics.median(bare_times)
    print(f"steps per run: {args.steps}, runs per side: {args.repeats}")
    print(f"bare trl.GRPOTrainer : {bare_step:.3f} s/step  {[round(t, 3) for t in bare_times]}")
    print(f"engine.train         : {engine_step:.3f} s/step  {[round(t, 3) for t in engine_times]}")
    print(f"ratio engine / bare  : {engine_step / bare_step:.3f}  (goal <= 1.05)")


if __name__ == "__main__":
    main()
