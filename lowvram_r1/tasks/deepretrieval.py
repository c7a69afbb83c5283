"""DeepRetrieval: query rewriting. The model turns a question into a search query (``<answer> query </answer>``,
one turn); the reward is the recall@k of the gold passage(s) among the BM25 results for that query, in tiers,
plus format.

    lowvram-r1 train --task deepretrieval --model tiny

Tiers (DeepRetrieval's, divided by 5 so full recall scores 1.0): recall ≥ 0.7 → 1.0, ≥ 0.5 → 0.8, ≥ 0.4 → 0.6,
≥ 0.3 → 0.2, ≥ 0.1 → 0.1, > 0 → 0.02, else 0. Rows need ``gold_titles`` (the invented world has them; its
one-hop questions by default). The weight-0 monitors read the query's own retrieval: a query written, a gold
passage among the results, a gold answer in the retrieved text.
"""

from __future__ import annotations

import functools
from typing import Any

from lowvram_r1.envs.search import SearchSettings
from lowvram_r1.rewards.f1 import normalize_answer
from lowvram_r1.rewards.format import soft_format_reward
from lowvram_r1.rewards.parsing import completion_text, extract_answer
from lowvram_r1.tasks.base import Split, Task
from lowvram_r1.tasks.search_common import SEARCH_OPTIONS, TINY_SEARCH_OPTIONS, environment, search_rows

SYSTEM_PROMPT = (
    "Rewrite the question into a search query for a search engine. Think inside <think> </think>, then give only "
    "the query inside <answer> </answer>."
)
TIERS = ((0.7, 1.0), (0.5, 0.8), (0.4, 0.6), (0.3, 0.2), (0.1, 0.1), (1e-9, 0.02))


@functools.lru_cache(maxsize=8192)
def retrieved(blob: str, query: str) -> tuple[tuple[str, ...], str]:
    """(titles, text) of the top-k passages for ``query`` under the row's search settings."""
    block = environment(blob).observe(query)
    from lowvram_r1.rewards.trace import parse_trace

    trace = parse_trace("<search></search>" + block)
    return tuple(trace.retrieved_titles), trace.retrieved_text


def _query(completion: Any) -> str | None:
    answer = extract_answer(completion_text(completion))
    return answer[:500] if answer else None


def recall_at_k(completion: Any, row: dict) -> float:
    """Share of the row's gold titles among the passages the completion's query retrieves."""
    query, gold = _query(completion), {normalize_answer(t) for t in row.get("gold_titles") or []}
    if not query or not gold or not row.get("search"):
        return 0.0
    titles, _ = retrieved(row["search"], query)
    return len(gold & {normalize_answer(t) for t in titles}) / len(gold)


def tier(recall: float) -> float:
    return next((score for floor, score in TIERS if recall >= floor), 0.0)


def _rows(columns: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Per-completion rows of the columns the rewards read; a row without ``search`` (a hand-written one for
    ``lowvram-r1 score``) searches the default invented world."""
    keys = [k for k in ("gold_titles", "golden_answers", "search") if columns.get(k) is not None]
    rows = [{k: columns[k][i] for k in keys} for i in range(count)]
    return [{"search": SearchSettings().to_json(), **row} for row in rows]


def recall_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """The recall@k tier of the gold passages for the completion's query (see the module docstring)."""
    return [tier(recall_at_k(c, row)) for c, row in zip(completions, _rows(kwargs, len(completions)), strict=True)]


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 for ``<think>…</think><answer>query</answer>``, else 0.0."""
    return soft_format_reward(completions, **kwargs)


def search_count_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 when the completion wrote a query (monitor)."""
    return [float(_query(c) is not None) for c in completions]


def retrieval_hit_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 when a gold passage is among the query's results (monitor)."""
    return [float(recall_at_k(c, row) > 0) for c, row in zip(completions, _rows(kwargs, len(completions)), strict=True)]


def answer_in_retrieved_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 when a gold answer appears in the query's retrieved text (monitor)."""
    out = []
    for c, row in zip(completions, _rows(kwargs, len(completions)), strict=True):
        query = _query(c)
        if not query or not row.get("search"):
            out.append(0.0)
            continue
        seen = f" {normalize_answer(retrieved(row['search'], query)[1])} "
        golds = [normalize_answer(a) for a in row.get("golden_answers") or []]
        out.append(float(any(g and f" {g} " in seen for g in golds)))
    return out


def check(completion: Any, row: dict) -> bool:
    """Every gold passage is retrieved by the completion's query."""
    return recall_at_k(completion, row) == 1.0


def reference_completion(row: dict) -> str:
    """The names of every gold passage as the query (the world's rows only)."""
    return (
        f"<think> The answer is on the pages of {', '.join(row['queries'])}. </think>\n"
        f"<answer>\n{' '.join(row['queries'])}\n</answer>"
    )


def rows(split: Split) -> list[dict[str, Any]]:
    return search_rows(split, "information")


TASK = Task(
    name="deepretrieval",
    description="DeepRetrieval: rewrite the question into a BM25 query; recall@k of the gold passages in tiers.",
    system_prompt=SYSTEM_PROMPT,
    reward_funcs=[recall_reward, format_reward, search_count_reward, retrieval_hit_reward, answer_in_retrieved_reward],
    reward_weights=[1.0, 0.2, 0.0, 0.0, 0.0],
    check=check,
    rows=rows,
    answer_columns=("question", "golden_answers", "gold_titles"),
    reference_completion=reference_completion,
    default_options={**SEARCH_OPTIONS, "hops": "1"},  # one gold passage per question: recall@k is well defined
    tiny_options=TINY_SEARCH_OPTIONS,
)
