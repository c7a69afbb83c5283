"""Held-out evaluation: generate for each test prompt and count the completions the task's ``check`` accepts.

``engine.train`` calls :func:`evaluate` before and after training (and every ``eval_steps``); the numbers it
returns are the accuracy that metrics.jsonl, the CLI summary and the panel show. Generation here is
transformers ``generate``, batched with left padding, or the colocated vLLM engine when training uses one.
:func:`answer` asks a run's adapter one question (the panel's "Try it", in a child process, and the notebook's
chat).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lowvram_r1.models.prompts import prompt_text
from lowvram_r1.rewards.parsing import extract_answer
from lowvram_r1.tasks.base import Task

logger = logging.getLogger(__name__)


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    max_new_tokens: int,
    temperature: float = 0.0,
    batch_size: int = 64,
) -> list[str]:
    """Completions for chat-message or plain-text prompts; greedy when ``temperature`` is 0."""
    import torch

    texts = [prompt_text(tokenizer, p) for p in prompts]
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(model.device)
            sampling = (
                {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
                if temperature > 0
                else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
            )
            with torch.no_grad():
                generated = model.generate(
                    **batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling
                )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            outputs.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return outputs


def score(task: Task, rows: Sequence[dict], completions: Sequence[str], samples: int = 1) -> dict[str, float]:
    """Accuracy (pass@1: the mean of ``check`` over all ``samples`` completions per row), pass@k when
    ``samples`` > 1 (some sample of the row is correct), format rate and mean length.

    ``completions`` holds ``samples`` consecutive completions per row. Rows the task cannot grade (a gold answer
    math-verify cannot parse) are left out of every rate and counted as ``ungradable``.
    """
    keep = [task.gradable is None or bool(task.gradable(row)) for row in rows]
    ungradable = keep.count(False)
    if ungradable:
        completions = [c for i, c in enumerate(completions) if keep[i // samples]]
        rows = [row for row, kept in zip(rows, keep, strict=True) if kept]
    expanded = [row for row in rows for _ in range(samples)]
    correct = [bool(task.check(c, r)) for c, r in zip(completions, expanded, strict=True)]
    formatted = [extract_answer(c) is not None for c in completions]
    total = max(len(completions), 1)
    result = {
        "accuracy": sum(correct) / total,
        "format_rate": sum(formatted) / total,
        "mean_length": sum(len(c) for c in completions) / total,
        "n": float(len(rows)),
        "samples": float(samples),
        "ungradable": float(ungradable),
    }
    if samples > 1:
        counts = [sum(correct[i : i + samples]) for i in range(0, len(correct), samples)]
        for k in sorted({2**i for i in range(1, samples.bit_length())} | {samples}):  # pass@2, @4, ..., @samples
            result[f"pass@{k}"] = sum(pass_at_k(samples, c, k) for c in counts) / max(len(rows), 1)
        result[f"maj@{samples}"] = majority_accuracy(task, rows, completions, samples)
    return result


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k completions drawn from n (c of them correct) is correct (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_accuracy(task: Task, rows: Sequence[dict], completions: Sequence[str], samples: int) -> float:
    """Share of rows whose most frequent extracted answer is correct (ties: the first seen)."""
    right = 0
    for index, row in enumerate(rows):
        group = completions[index * samples : (index + 1) * samples]
        answers = [extract_answer(c) for c in group]
        votes = Counter(" ".join(a.split()) for a in answers if a)
        if votes:
            winner = votes.most_common(1)[0][0]
            representative = next(c for c, a in zip(group, answers, strict=True) if a and " ".join(a.split()) == winner)
            right += bool(task.check(representative, row))
    return right / max(len(rows), 1)


def monitor_means(
    task: Task,
    rows: Sequence[dict],
    prompts: Sequence[Any],
    completions: Sequence[str],
    rewards: Sequence[Any] | None = None,
) -> dict[str, float]:
    """The mean of each weight-0 monitor over the completions (search tasks: searches per completion, retrieval
    hit rate, answer-in-retrieved rate); rows a monitor answers None for are left out. ``rewards``: the run's
    reward list (``rewards.weighted.reward_list``: a reward set to 0 by name, or added at 0, is a monitor too);
    without it, the task's own weights."""
    from lowvram_r1.rewards.weighted import GuardedReward

    columns = {key: [row.get(key) for row in rows] for key in (rows[0] if rows else {}) if key != "prompt"}
    if rewards is None:
        pairs = [(fn.__name__, fn) for fn, w in zip(task.reward_funcs, task.reward_weights, strict=True) if w == 0]
    else:  # the training monitors (check, reflection) are eval's accuracy and need no second line
        pairs = [(r.name, r.fn) for r in rewards if r.weight == 0 and r.source != "monitor"]
    means = {}
    for name, fn in pairs:
        guarded = GuardedReward(fn, name, quiet=True)  # a user's reward that fails costs its rows, not the eval
        values = [v for v in guarded(list(completions), prompts=list(prompts), **columns) if v is not None]
        if values:
            means[name.removesuffix("_reward")] = sum(values) / len(values)
    return means


Generator = Callable[[Sequence[Any], int, float], list[str]]  # (prompts, max_new_tokens, temperature) -> texts


def evaluate(
    model: Any,
    tokenizer: Any,
    task: Task,
    rows: Sequence[dict],
    max_new_tokens: int,
    temperature: float = 0.0,
    samples: int = 1,
    generator: Generator | None = None,
    rewards: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Generate ``samples`` completions per row (1 when greedy) and score them; a few are kept as examples.

    ``generator`` replaces transformers ``generate`` (training with ``--use-vllm`` passes the rollout engine's);
    ``rewards``: the run's reward list, whose weight-0 entries are reported as monitors.
    """
    started = time.monotonic()
    samples = samples if temperature > 0 else 1
    prompts = [r["prompt"] for r in rows for _ in range(samples)]
    if generator is not None:
        completions = generator(prompts, max_new_tokens, temperature)
    else:
        completions = generate(model, tokenizer, prompts, max_new_tokens, temperature)
    result: dict[str, Any] = {**score(task, rows, completions, samples), "temperature": temperature}
    for name, mean in monitor_means(
        task, [r for r in rows for _ in range(samples)], prompts, completions, rewards
    ).items():
        result[f"monitor/{name}"] = mean
    result["seconds"] = time.monotonic() - started
    shown = zip(completions[: 3 * samples : samples], rows[:3], strict=True)
    result["examples"] = [{"completion": c, "correct": bool(task.check(c, r))} for c, r in shown]
    logger.info(
        "eval %s: accuracy %.3f, format %.3f on %d rows (%.1fs)",
        task.name,
        result["accuracy"],
        result["format_rate"],
        len(rows),
        result["seconds"],
    )
    return result


def check_retrieval_switch(task: Task, retrieval: bool) -> None:
    """Retrieval can be switched off only for a task that searches (``ValueError`` otherwise); needs no model."""
    if not retrieval and task.environment is None:
        raise ValueError(f"--no-retrieval: task {task.name} does not search (only the search tasks do)")


def task_generator(
    task: Task, options: dict[str, Any], model: Any, tokenizer: Any, retrieval: bool = True
) -> Generator | None:
    """How ``task`` generates outside training: None (transformers ``generate``) for a single-turn task; for a
    search task, episodes that search as training does (``retrieval=False``: every search comes back empty, the
    same model with retrieval switched off)."""
    check_retrieval_switch(task, retrieval)
    if task.environment is None:
        return None
    from lowvram_r1.envs.search import SearchEnvironment
    from lowvram_r1.rollout.multiturn import model_search_generator

    env = SearchEnvironment(task.environment(task.resolve_options(options)), retrieval=retrieval)
    return model_search_generator(model, tokenizer, env)


def load_for_inference(cfg: Any, adapter: str | None = None) -> tuple[Any, Any]:
    """The run's model (a config or its plan; built if tiny), with an optional LoRA adapter on top, ready to
    generate."""
    from lowvram_r1.backends.hf import load_hf
    from lowvram_r1.models.hardware import detect_hardware
    from lowvram_r1.run_plan import plan_of

    plan = plan_of(cfg)
    model, tokenizer = load_hf(plan.cfg, plan.model_path(), detect_hardware())
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model, tokenizer


def answer(run_dir: Path, question: str | None = None, seed: int = 0, temperature: float = 0.0) -> dict[str, Any]:
    """Load the run's model + adapter and answer ``question`` (or a held-out problem) with the task's prompt."""
    from lowvram_r1 import config
    from lowvram_r1.run_plan import resolve
    from lowvram_r1.runs import RunDir

    run = RunDir(run_dir)
    if run.path.is_symlink() or run.config.is_symlink():
        raise ValueError(f"{run_dir} (or its config.yaml) is a symlink: only real run folders are answered from")
    run.check_files()  # an adapter/ or checkpoint linked elsewhere would load someone else's weights
    if not run.config.is_file():
        raise ValueError(f"{run_dir} has no config.yaml: not a run directory")
    plan = resolve(config.load(run.config))
    cfg = plan.cfg
    adapter = run.adapter if (run.adapter / "adapter_config.json").is_file() else run.last_checkpoint()
    if adapter is None:
        raise ValueError(f"{run.name} has no adapter nor checkpoint yet: let it train (or finish) first")
    task, fmt, options = plan.task, plan.prompt_format, dict(plan.options)
    row: dict[str, Any] | None = None
    if question is None:
        rows = plan.rows("test", 50)
        row = random.Random(seed).choice(rows)
        prompt = row["prompt"]
        question = task.question(row, options)
    else:
        free = dataclasses.replace(task, question=lambda _row, _options: question)  # the task's prompt, this question
        prompt = free.prompt({}, fmt, options)
    model, tokenizer = load_for_inference(plan, str(adapter))
    searching = task_generator(task, options, model, tokenizer)
    max_tokens = cfg.generation.max_completion_length
    if searching is not None:
        completion = searching([prompt], max_tokens, temperature)[0]
    else:
        completion = generate(model, tokenizer, [prompt], max_tokens, temperature)[0]
    prompt_text = prompt if isinstance(prompt, str) else "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
    return {
        "question": question,
        "prompt": prompt,
        "prompt_text": prompt_text,
        "completion": fmt.prefill + completion,
        "correct": None if row is None else bool(task.check(completion, row)),
        "adapter": str(adapter),
    }
