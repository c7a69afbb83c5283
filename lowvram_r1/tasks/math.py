"""Competition maths with ``\\boxed{}`` answers (MATH-500, NuminaMath, DeepScaleR-style rows), checked by
math-verify within a time bound.

Rows: ``question``, ``answer`` (the gold final answer; a NuminaMath-style ``solution`` is reduced to its last
``\\boxed{}``). Sources: ``--data-path`` or the hub (``hub_id`` option; MATH-500 for the test split).
The final answer is the last ``\\boxed{}`` (else ``<answer>``) after the reasoning: one inside ``<think>`` does not
count. A gold answer math-verify cannot parse is ungradable: the same text (whitespace and spacing aside) still
counts as correct, anything else gets reward ``None`` (TRL skips it), and eval counts such rows apart.
"""

from __future__ import annotations

from typing import Any

from lowvram_r1.rewards.checked import batch_rows, remembered
from lowvram_r1.rewards.format import soft_format_reward
from lowvram_r1.rewards.math import extract_math_answer, is_equivalent, last_boxed, parse_gold
from lowvram_r1.rewards.parsing import completion_text
from lowvram_r1.tasks.base import Split, Task, TaskDataError, local_split, read_hub_rows, take

SYSTEM_PROMPT = (
    "Think step by step inside <think> </think> tags. Then write the final answer inside <answer> </answer> tags "
    "as \\boxed{...}."
)


def _row(raw: dict[str, Any]) -> dict[str, Any]:
    question = raw.get("question", raw.get("problem"))
    answer = raw.get("answer")
    if answer is None and raw.get("solution") is not None:
        answer = last_boxed(str(raw["solution"]))
    if question is None or answer is None:
        raise TaskDataError("math rows need question (or problem) and answer (or a solution with \\boxed{})")
    return {"question": str(question), "answer": str(answer)}


def rows(split: Split) -> list[dict[str, Any]]:
    options = split.options
    if split.data_path:
        source = local_split(split)
    elif split.split == "test":
        source = read_hub_rows(options["test_hub_id"], None, "test")
    else:
        source = read_hub_rows(options["hub_id"], None, "train")
    return take([_row(r) for r in source], split.size)


@remembered
def grade(completion: Any, row: dict) -> bool | None:
    """math-verify's verdict on the completion's boxed answer; None when the gold cannot be graded and differs."""
    answer = extract_math_answer(completion_text(completion))
    return is_equivalent(answer, row["answer"]) if answer is not None else False


def check(completion: Any, row: dict) -> bool:
    return grade(completion, row) is True


def gradable(row: dict) -> bool:
    return parse_gold(str(row["answer"])) is not None


def math_correctness_reward(completions: list[Any], **columns: Any) -> list[float | None]:
    """1.0 when math-verify finds the answer equal to the gold, 0.0 if not; for an ungradable gold, 1.0 for the
    same text and None otherwise. Graded through the same remembered verdicts as ``check`` (one math-verify run
    per completion for this reward and the correctness monitor together)."""
    verdicts = [grade(c, row) for c, row in zip(completions, batch_rows(completions, columns), strict=True)]
    return [None if verdict is None else float(verdict) for verdict in verdicts]


TASK = Task(
    name="math",
    description="Competition maths, \\boxed{} answers checked by math-verify (hub MATH / DeepScaleR or a local file).",
    system_prompt=SYSTEM_PROMPT,
    reward_funcs=[soft_format_reward, math_correctness_reward],
    reward_weights=[0.2, 1.0],
    check=check,
    rows=rows,
    answer_columns=("question", "answer"),
    gradable=gradable,
    default_options={
        "hub_id": "agentica-org/DeepScaleR-Preview-Dataset",
        "test_hub_id": "HuggingFaceH4/MATH-500",
        "test_size": 200,  # rows held out of a local file for evaluation
    },
)
