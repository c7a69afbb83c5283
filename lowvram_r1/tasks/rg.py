"""Any reasoning-gym dataset as a task (``rg:<name>``), scored by the dataset's own ``score_answer``.

Rows carry the whole reasoning-gym entry as JSON (``rg_entry``) because entries' metadata differ in shape from one
generator to the next; the reward hands it back to ``score_answer`` untouched. Generators are seeded, so these
tasks work offline, and the train and test splits are drawn from disjoint seeds.

    lowvram-r1 train --task rg:basic_arithmetic --model tiny
"""

from __future__ import annotations

import functools
import json
from typing import Any

from lowvram_r1.rewards.format import soft_format_reward
from lowvram_r1.rewards.parsing import completion_text, extract_answer
from lowvram_r1.tasks.base import Split, Task, take
from lowvram_r1.tasks.option_checks import check_generated

PREFIX = "rg:"
SYSTEM_PROMPT = (
    "Think step by step inside <think> </think> tags, then give only the final answer inside <answer> </answer> tags."
)
TEST_SEED_OFFSET = 1_000_003  # test rows come from a seed stream far from the training one


def rg_names() -> list[str]:
    """Every dataset reasoning-gym registers (imports reasoning-gym, ~1 s)."""
    import reasoning_gym

    return sorted(reasoning_gym.factory.DATASETS)


@functools.cache
def _score_fn(name: str) -> Any:
    import reasoning_gym

    return reasoning_gym.get_score_answer_fn(name)


def _jsonable(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def entry_score(name: str, answer: str | None, entry_json: str) -> float:
    """reasoning-gym's score in [0, 1] for an extracted answer; 0.0 when there is none or the scorer fails."""
    if answer is None:
        return 0.0
    entry = json.loads(entry_json)
    try:
        return float(_score_fn(name)(answer[:10_000], entry))
    except Exception:  # a scorer written for well-formed answers may raise on garbage: that answer scores 0
        return 0.0


def rg_rows(name: str, split: Split, default_size: int, config: dict[str, Any]) -> list[dict[str, Any]]:
    import reasoning_gym

    size = split.size or (split.options.get("test_size", 200) if split.split == "test" else default_size)
    check_generated(f"rg:{name}", size, "the split size (train_size / test_size / --train-size / --limit)")
    seed = split.seed + (TEST_SEED_OFFSET if split.split == "test" else 0)
    dataset = reasoning_gym.create_dataset(name, size=size, seed=seed, **config)
    rows = []
    for entry in dataset:
        rows.append(
            {
                "question": entry["question"],
                "answer": str(entry["answer"]),
                "rg_entry": json.dumps(entry, default=_jsonable),
            }
        )
    return take(rows, split.size)


class RgScoreReward:
    """reasoning-gym's own score of the ``<answer>`` content (picklable: holds only the dataset name)."""

    __name__ = "rg_score_reward"

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, completions: list[Any], rg_entry: list[str], **kwargs: Any) -> list[float]:
        return [
            entry_score(self.name, extract_answer(completion_text(c)), e)
            for c, e in zip(completions, rg_entry, strict=True)
        ]


def reference_completion(row: dict) -> str:
    entry = json.loads(row["rg_entry"])
    reasoning = str(entry.get("metadata", {}).get("answer_cot") or "I work it out step by step.")
    return f"<think>\n{reasoning}\n</think>\n<answer>\n{row['answer']}\n</answer>"


def make_rg_task(name: str) -> Task:
    """The task for reasoning-gym dataset ``name`` (``rg:<name>``)."""
    if name not in rg_names():
        raise ValueError(f"reasoning-gym has no dataset '{name}'; `lowvram-r1 tasks --rg` lists them")
    score = RgScoreReward(name)

    def check(completion: Any, row: dict) -> bool:
        return entry_score(name, extract_answer(completion_text(completion)), row["rg_entry"]) >= 1.0

    def rows(split: Split) -> list[dict[str, Any]]:
        return rg_rows(name, split, split.options["train_size"], dict(split.options["config"]))

    return Task(
        name=f"{PREFIX}{name}",
        description=f"reasoning-gym '{name}' (offline generator, scored by its score_answer)",
        system_prompt=SYSTEM_PROMPT,
        reward_funcs=[soft_format_reward, score],
        reward_weights=[0.2, 1.0],
        check=check,
        rows=rows,
        answer_columns=("question", "answer", "rg_entry"),
        reference_completion=reference_completion,
        default_options={"train_size": 2000, "test_size": 200, "config": {}},
    )
