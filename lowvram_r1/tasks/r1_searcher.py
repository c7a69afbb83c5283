"""R1-Searcher: two-stage outcome RL for search. Stage 1 (``stage: 1``) rewards the format (0.5) and having
triggered retrieval (0.5), no answer reward; stage 2 (``stage: 2``, the default) rewards the answer (F1) and
penalises a wrong format (−2).

    lowvram-r1 train --task r1_searcher --model tiny          # stage 2 (recipe option stage: 1 for stage 1)
    lowvram-r1 pipeline --task r1_searcher --model tiny       # stage 1, then stage 2 from stage 1's model

The stage is written into every row (``stage`` column) and each reward answers ``None`` (not applicable) in the
stage it does not belong to, so one bundle serves both and each stage's total is exactly the paper's. Plus the
weight-0 search monitors.
"""

from __future__ import annotations

from typing import Any

from lowvram_r1.rewards.search import MONITORS, f1_score, search_format_ok, traces
from lowvram_r1.tasks.base import Split, Task, TaskDataError
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


def _stages(stage: list[Any] | None, count: int) -> list[int]:
    return [int(s) if str(s) in ("1", "2") else 2 for s in (stage or [2] * count)]


def format_reward(completions: list[Any], stage: list[Any] | None = None, **kwargs: Any) -> list[float | None]:
    """Stage 1: 1.0 for the right format, else 0.0 (weight 0.5). Stage 2: None."""
    return [
        float(search_format_ok(t)) if s == 1 else None
        for t, s in zip(traces(completions, kwargs.get("prompts")), _stages(stage, len(completions)), strict=True)
    ]


def format_penalty_reward(completions: list[Any], stage: list[Any] | None = None, **kwargs: Any) -> list[float | None]:
    """Stage 2: 0.0 for the right format, −1.0 when it is wrong (weight 2). Stage 1: None."""
    return [
        (0.0 if search_format_ok(t) else -1.0) if s == 2 else None
        for t, s in zip(traces(completions, kwargs.get("prompts")), _stages(stage, len(completions)), strict=True)
    ]


def retrieval_reward(completions: list[Any], stage: list[Any] | None = None, **kwargs: Any) -> list[float | None]:
    """Stage 1: 1.0 when the completion searched at least once and was answered (weight 0.5). Stage 2: None."""
    return [
        float(bool(t.queries and t.observations)) if s == 1 else None
        for t, s in zip(traces(completions, kwargs.get("prompts")), _stages(stage, len(completions)), strict=True)
    ]


def answer_reward(
    completions: list[Any], golden_answers: list[Any], stage: list[Any] | None = None, **kwargs: Any
) -> list[float | None]:
    """Stage 2: answer F1. Stage 1: None (no answer reward)."""
    return [
        f1_score(t, g) if s == 2 else None
        for t, g, s in zip(
            traces(completions, kwargs.get("prompts")), golden_answers, _stages(stage, len(completions)), strict=True
        )
    ]


def rows(split: Split) -> list[dict[str, Any]]:
    stage = str(split.options["stage"])
    if stage not in ("1", "2"):
        raise TaskDataError(f"r1_searcher: option stage must be 1 or 2, got {split.options['stage']!r}")
    return [{**row, "stage": int(stage)} for row in search_rows(split, "information")]


TASK = Task(
    name="r1_searcher",
    description="R1-Searcher: stage 1 format + retrieval triggered, stage 2 format + answer F1 (option stage).",
    system_prompt=SEARCH_R1_PROMPT.format(slot="information"),
    reward_funcs=[format_reward, retrieval_reward, format_penalty_reward, answer_reward, *MONITORS],
    reward_weights=[0.5, 0.5, 2.0, 1.0, 0.0, 0.0, 0.0],
    check=exact_check,
    rows=rows,
    answer_columns=("question", "golden_answers"),  # stage: a column of the task's own rows; 2 when absent
    reference_completion=reference_trace,
    default_options={**SEARCH_OPTIONS, "stage": 2},
    tiny_options=TINY_SEARCH_OPTIONS,
    tiny_sizes=TINY_SEARCH_SIZES,
    environment=lambda options: settings(options, "information"),
    pipeline=("grpo:stage=1", "grpo:stage=2"),  # the paper's two RL stages, each from the previous one's model
)
