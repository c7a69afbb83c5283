"""Search-R1: reason, ``<search>`` the local BM25 index as often as needed (passages come back inside
``<information>``), then ``<answer>``; exact-match outcome reward on normalised answers, plus format.

    lowvram-r1 train --task search_r1 --model tiny            # offline: the invented world and its corpus
    lowvram-r1 score --task search_r1 --row '{"golden_answers": ["Dravonne"]}' --completion \\
        '<think>x</think><search> Vesna </search><information>...</information><answer>Dravonne</answer>'

Rewards: exact match (1.0), the Search-R1 tag sequence (0.2), and weight-0 monitors (searches per completion,
retrieval hit rate, answer-in-retrieved-text rate). Rows and sources: :mod:`lowvram_r1.tasks.search_common`.
"""

from __future__ import annotations

from typing import Any

from lowvram_r1.rewards.search import MONITORS, em_score, search_format_ok, traces
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


def exact_match_reward(completions: list[Any], golden_answers: list[Any], **kwargs: Any) -> list[float]:
    """1.0 when the final ``<answer>`` (the model's own text) equals a gold answer after normalisation."""
    return [em_score(t, g) for t, g in zip(traces(completions, kwargs.get("prompts")), golden_answers, strict=True)]


def search_format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 for think → (search → think)* → answer with every search answered and no forged observation."""
    return [float(search_format_ok(t)) for t in traces(completions, kwargs.get("prompts"))]


def rows(split: Split) -> list[dict[str, Any]]:
    return search_rows(split, "information")


TASK = Task(
    name="search_r1",
    description="Search-R1: multi-turn <search> over a local BM25 index, exact-match reward (offline world).",
    system_prompt=SEARCH_R1_PROMPT.format(slot="information"),
    reward_funcs=[exact_match_reward, search_format_reward, *MONITORS],
    reward_weights=[1.0, 0.2, 0.0, 0.0, 0.0],
    check=exact_check,
    rows=rows,
    answer_columns=("question", "golden_answers"),
    reference_completion=reference_trace,
    default_options=SEARCH_OPTIONS,
    tiny_options=TINY_SEARCH_OPTIONS,
    tiny_sizes=TINY_SEARCH_SIZES,
    environment=lambda options: settings(options, "information"),
)
