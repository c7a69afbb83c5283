"""An example task of your own: is the sum of a few digits even or odd? (offline, procedural)

    lowvram-r1 tasks --check examples/own_task/parity_task.py:TASK
    lowvram-r1 train --task examples/own_task/parity_task.py:TASK --model tiny --max-steps 2

A task file builds one ``lowvram_r1.tasks.Task``: rows, a prompt, rewards (TRL's signature, named ``*_reward``)
with weights, a ``check`` for eval's accuracy, and optionally a ``reference_completion`` (the tiny model's cold
start learns from it; ``tasks --check`` makes sure it passes ``check``). See docs/own-task.md.
"""

from __future__ import annotations

import random
from typing import Any

from lowvram_r1.rewards.format import soft_format_reward
from lowvram_r1.rewards.parsing import completion_text, extract_answer
from lowvram_r1.tasks import Split, Task


def rows(split: Split) -> list[dict[str, Any]]:
    """Seeded digits; the test split draws from another seed so the two never share a row's stream."""
    rng = random.Random(f"{split.seed}-{split.split}")
    out, seen = [], set()
    while len(out) < (split.size or 2000):
        digits = [rng.randint(0, 9) for _ in range(rng.randint(3, 6))]
        if tuple(digits) in seen:
            continue
        seen.add(tuple(digits))
        out.append({"digits": digits, "parity": "even" if sum(digits) % 2 == 0 else "odd"})
    if split.split == "train":  # keep the held-out rows out of training
        held_out = {tuple(r["digits"]) for r in rows(Split("test", split.options["test_size"], split.seed))}
        out = [r for r in out if tuple(r["digits"]) not in held_out]
    return out


def question(row: dict, options: dict) -> str:
    return f"Is the sum of {' '.join(map(str, row['digits']))} even or odd?"


def check(completion: Any, row: dict) -> bool:
    answer = extract_answer(completion_text(completion))
    return answer is not None and answer.strip().lower() == row["parity"]


def parity_reward(completions: list[Any], parity: list[str], **kwargs: Any) -> list[float]:
    """1.0 for the right word in the answer block (the dataset column ``parity`` arrives as a keyword)."""
    return [1.0 if check(c, {"parity": p}) else 0.0 for c, p in zip(completions, parity, strict=True)]


def reference_completion(row: dict) -> str:
    total = sum(row["digits"])
    return f"<think>\n{' + '.join(map(str, row['digits']))} = {total}\n</think>\n<answer>\n{row['parity']}\n</answer>"


TASK = Task(
    name="parity",
    description="Is a sum of digits even or odd? (an example of a task file of your own)",
    system_prompt="Think in <think> </think>, then answer even or odd in <answer> </answer>.",
    reward_funcs=[parity_reward, soft_format_reward],
    reward_weights=[1.0, 0.2],
    check=check,
    rows=rows,
    answer_columns=("digits", "parity"),
    question=question,
    reference_completion=reference_completion,
    default_options={"test_size": 200},
    tiny_sizes={"sft_examples": 2000, "sft_epochs": 1.0, "layers": 2},  # a quick cold start for the demo
)
