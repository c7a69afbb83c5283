"""DeepResearcher: multi-turn search with observation masking; word-level F1 of the answer when the format is
right, −1 when it is not (its strict format gate). Written as two terms that add up to exactly that: answer F1
counted only in a well-formed trace, and a format penalty of −1.

    lowvram-r1 train --task deepresearcher --model tiny

Plus the weight-0 search monitors. Rows and sources: :mod:`lowvram_r1.tasks.search_common`.
"""

from __future__ import annotations

from typing import Any

from lowvram_r1.rewards.search import MONITORS, f1_score, search_format_ok, traces
from lowvram_r1.tasks.base import Split, Task
from lowvram_r1.tasks.search_common import (
    SEARCH_OPTIONS,
    SEARCH_R1_PROMPT,
    TINY_SEARCH_OPTIONS,
    TINY_SEARCH_SIZES,
    exact_check,
    reference_trace,
    search_rows,
    settings,
)


def answer_f1_reward(completions: list[Any], golden_answers: list[Any], **kwargs: Any) -> list[float]:
    """Word-level answer F1 when the format is right; 0.0 when it is not (the penalty below says −1)."""
    return [
        f1_score(t, g) if search_format_ok(t) else 0.0
        for t, g in zip(traces(completions, kwargs.get("prompts")), golden_answers, strict=True)
    ]


def format_penalty_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """0.0 for the right format (think → (search → think)* → answer, nothing forged), −1.0 otherwise."""
    return [0.0 if search_format_ok(t) else -1.0 for t in traces(completions, kwargs.get("prompts"))]


def rows(split: Split) -> list[dict[str, Any]]:
    return search_rows(split, "information")


TASK = Task(
    name="deepresearcher",
    description="DeepResearcher: multi-turn search, answer F1 when the format is right, -1 when not (offline world).",
    system_prompt=SEARCH_R1_PROMPT.format(slot="information"),
    reward_funcs=[answer_f1_reward, format_penalty_reward, *MONITORS],
    reward_weights=[1.0, 1.0, 0.0, 0.0, 0.0],
    check=exact_check,
    rows=rows,
    answer_columns=("question", "golden_answers"),
    reference_completion=reference_trace,
    default_options=SEARCH_OPTIONS,
    tiny_options=TINY_SEARCH_OPTIONS,
    tiny_sizes=TINY_SEARCH_SIZES,
    environment=lambda options: settings(options, "information"),
)
