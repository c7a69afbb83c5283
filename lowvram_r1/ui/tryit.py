"""Try a run's adapter on one question: ``python -m lowvram_r1.ui.tryit runs/NAME [--question TEXT]``.

The panel runs this in a child process (the panel itself never imports torch) and reads the one JSON line it
prints: the question, the prompt the model saw, its completion and, for a held-out problem, whether the task's
check accepts it. Without ``--question`` it answers a held-out problem of the run's task. Works with the tiny model
on CPU (the adapter loads on top of the run's base model, as ``lowvram-r1 eval`` does).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from lowvram_r1 import config
from lowvram_r1.runs import RunDir

TIMEOUT_S = 600


def answer(run_dir: Path, question: str | None = None, seed: int = 0, temperature: float = 0.0) -> dict[str, Any]:
    """Load the run's model + adapter and answer ``question`` (or a held-out problem) with the task's prompt."""
    from lowvram_r1.evaluate import generate, load_for_inference
    from lowvram_r1.tasks import Split, get_task
    from lowvram_r1.tasks.base import PromptFormat

    run = RunDir(run_dir)
    if not run.config.is_file():
        raise ValueError(f"{run_dir} has no config.yaml: not a run directory")
    cfg = config.load(run.config)
    adapter = run.adapter if (run.adapter / "adapter_config.json").is_file() else run.last_checkpoint()
    if adapter is None:
        raise ValueError(f"{run.name} has no adapter nor checkpoint yet: let it train (or finish) first")
    task = get_task(cfg.task.name)
    fmt = PromptFormat(cfg.task.prompt_style, cfg.task.system_prompt, cfg.task.assistant_prefill)
    options = dict(cfg.task.options)
    row: dict[str, Any] | None = None
    if question is None:
        rows = task.build_rows(Split("test", 50, cfg.task.data_seed, cfg.task.data_path, options), fmt)
        row = random.Random(seed).choice(rows)
        prompt = row["prompt"]
        question = task.question(row, task.resolve_options(options))
    else:
        free = dataclasses.replace(task, question=lambda _row, _options: question)  # the task's prompt, this question
        prompt = free.prompt({}, fmt, options)
    model, tokenizer = load_for_inference(cfg, str(adapter))
    completion = generate(model, tokenizer, [prompt], cfg.generation.max_completion_length, temperature)[0]
    prompt_text = prompt if isinstance(prompt, str) else "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
    return {
        "question": question,
        "prompt": prompt,
        "prompt_text": prompt_text,
        "completion": fmt.prefill + completion,
        "correct": None if row is None else bool(task.check(completion, row)),
        "adapter": str(adapter),
    }


def run_in_child(run_dir: Path, question: str | None, seed: int = 0, cwd: Path | None = None) -> dict[str, Any]:
    """What the panel calls: :func:`answer` in a child process (argument list, no shell); errors as ``error``."""
    args = [sys.executable, "-m", "lowvram_r1.ui.tryit", str(run_dir), "--seed", str(seed)]
    if question:
        args += ["--question", question]  # one argument: the child reads it as text whatever it contains
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=cwd)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {TIMEOUT_S} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": tail}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lowvram_r1.ui.tryit", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="runs/NAME")
    parser.add_argument("--question", help="your own question (default: a held-out problem of the run's task)")
    parser.add_argument("--seed", type=int, default=0, help="which held-out problem")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    args = parser.parse_args(argv)
    from lowvram_r1.cli import quiet_libraries

    quiet_libraries(False)
    try:
        result = answer(Path(args.run_dir), args.question, args.seed, args.temperature)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
