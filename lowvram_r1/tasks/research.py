"""ReSearch: searches happen inside the reasoning — ``<think> … <search> q </search><result> … </result> …
</think><answer> … </answer>``; reward = answer F1 when it is above 0, else 0.1 when the format is right, else 0.

As in ReSearch, the answer is read from a well-formed rollout only (its parser takes the final answer of a trace
in the format): a right answer in a malformed trace scores 0, so the format is never free to drop.

    lowvram-r1 train --task research --model tiny

Plus the weight-0 search monitors. Rows and sources: :mod:`lowvram_r1.tasks.search_common`.
"""

from __future__ import annotations

from typing import Any

from lowvram_r1.rewards.search import MONITORS, f1_score, search_format_ok, traces
from lowvram_r1.tasks.base import Split, Task
from lowvram_r1.tasks.search_common import (
    SEARCH_OPTIONS,
    TINY_SEARCH_OPTIONS,
    TINY_SEARCH_SIZES,
    exact_check,
    reference_trace,
    search_rows,
    settings,
)

SYSTEM_PROMPT = (
    "Answer the given question. Think inside <think> </think>; while thinking you may search with <search> query "
    "</search>, and the results come back between <result> and </result>. After thinking, give a short answer inside "
    "<answer> </answer>."
)


def research_reward(completions: list[Any], golden_answers: list[Any], **kwargs: Any) -> list[float]:
    """Answer F1 when positive; otherwise 0.1 for the right format (searches inside one think block), else 0.
    The answer of a malformed trace is not read (F1 0)."""
    out = []
    for trace, golds in zip(traces(completions, kwargs.get("prompts")), golden_answers, strict=True):
        ok = search_format_ok(trace, "research")
        f1 = f1_score(trace, golds) if ok else 0.0
        out.append(f1 if f1 > 0 else 0.1 if ok else 0.0)
    return out


def rows(split: Split) -> list[dict[str, Any]]:
    return search_rows(split, "result")


TASK = Task(
    name="research",
    description="ReSearch: search inside the reasoning (<result> slot); F1, or 0.1 for the format (offline world).",
    system_prompt=SYSTEM_PROMPT,
    reward_funcs=[research_reward, *MONITORS],
    reward_weights=[1.0, 0.0, 0.0, 0.0],
    check=exact_check,
    rows=rows,
    answer_columns=("question", "golden_answers"),
    reference_completion=lambda row: reference_trace(row, "research"),
    default_options=SEARCH_OPTIONS,
    tiny_options=TINY_SEARCH_OPTIONS,
    tiny_sizes=TINY_SEARCH_SIZES,
    environment=lambda options: settings(options, "result"),
)
