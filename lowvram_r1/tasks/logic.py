"""Knights & Knaves logic puzzles from reasoning-gym's generator (offline), with Logic-RL-style rewards.

Rows: ``question``, ``answer`` (e.g. "Riley is an altruist, and Daniel is an egoist."), ``rg_entry``.
Rewards: format (0.5) and per-person partial credit (1.0): the share of inhabitants whose role the ``<answer>``
states correctly. ``check`` wants every one right.
"""

from __future__ import annotations

import re
from typing import Any

from lowvram_r1.rewards.format import soft_format_reward
from lowvram_r1.rewards.parsing import completion_text, extract_answer
from lowvram_r1.tasks.base import Split, Task
from lowvram_r1.tasks.rg import reference_completion, rg_rows

SYSTEM_PROMPT = (
    "You solve logic puzzles. Reason inside <think> </think> tags, then state who is what inside "
    "<answer> </answer> tags, in the format the question asks for."
)
_CLAIM = re.compile(r"\b([A-Z][a-z]+) is (?:a|an) ([a-z]+)", re.IGNORECASE)


def roles(text: str | None) -> dict[str, str]:
    """``{"riley": "altruist", ...}`` from sentences like "Riley is an altruist"; the last claim per name wins."""
    return {name.lower(): role.lower() for name, role in _CLAIM.findall((text or "")[:5000])}


def person_credit(completion: Any, gold: str) -> float:
    expected = roles(gold)
    stated = roles(extract_answer(completion_text(completion)))
    if not expected:
        return 0.0
    return sum(stated.get(name) == role for name, role in expected.items()) / len(expected)


def check(completion: Any, row: dict) -> bool:
    return person_credit(completion, row["answer"]) == 1.0


def logic_answer_reward(completions: list[Any], answer: list[str], **kwargs: Any) -> list[float]:
    """Share of inhabitants whose role the answer gets right (partial credit, 0.0 to 1.0)."""
    return [person_credit(c, a) for c, a in zip(completions, answer, strict=True)]


def rows(split: Split) -> list[dict[str, Any]]:
    options = split.options
    config = {
        "n_people": options["n_people"],
        "depth_constraint": options["depth"],
        "width_constraint": options["depth"],
    }
    return rg_rows("knights_knaves", split, options["train_size"], config)


TASK = Task(
    name="logic",
    description="Knights & Knaves logic puzzles (reasoning-gym generator, offline; partial credit per person).",
    system_prompt=SYSTEM_PROMPT,
    reward_funcs=[soft_format_reward, logic_answer_reward],
    reward_weights=[0.5, 1.0],
    check=check,
    rows=rows,
    answer_columns=("question", "answer"),
    reference_completion=reference_completion,
    default_options={"n_people": 2, "depth": 2, "train_size": 2000, "test_size": 200},
)
