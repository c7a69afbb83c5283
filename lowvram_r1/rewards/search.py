"""Reward pieces of the search-augmented tasks (Search-R1, ReSearch, DeepResearcher, R1-Searcher, DeepRetrieval)
and their weight-0 monitors. Every function reads a completion through :func:`~lowvram_r1.rewards.trace.parse_trace`,
so only the model's own text is graded and forged observations count against it.

    >>> text = ("<think>find her</think><search> Vesna Torrik </search>\\n<information>Doc 1 (Title: Vesna "
    ...         "Torrik) born in Dravonne.</information>\\n<think>so Dravonne</think><answer> Dravonne </answer>")
    >>> search_format_ok(parse_trace(text)), search_count_reward([text])
    (True, [1.0])

Formats: ``search_r1`` — ``<think>`` then any ``<search><think>`` pairs then ``<answer>``, with the observation after
each search cut out (Search-R1's sequence check); ``research`` — searches inside one ``<think>`` block, then
``<answer>``. Monitors: searches per completion, retrieval hit rate (a gold passage's title among those
retrieved; ``None`` for rows without gold titles), answer-in-retrieved-text rate.
"""

from __future__ import annotations

import re
from typing import Any

from lowvram_r1.rewards.f1 import answer_f1, exact_match, normalize_answer
from lowvram_r1.rewards.parsing import answer_texts
from lowvram_r1.rewards.trace import Trace, parse_trace

_SEARCH_R1 = re.compile(
    r"\s*<think>[^<]*</think>\s*(?:<search>[^<]*</search>\s*<think>[^<]*</think>\s*)*<answer>[^<]*</answer>\s*"
)
_RESEARCH = re.compile(r"\s*<think>[^<]*(?:<search>[^<]*</search>[^<]*)*</think>\s*<answer>[^<]*</answer>\s*")
_FORMATS = {"search_r1": _SEARCH_R1, "research": _RESEARCH}


def search_format_ok(trace: Trace, style: str = "search_r1") -> bool:
    """The trace's own text has the style's tag sequence, every search was answered and nothing was forged."""
    if trace.forged or len(trace.observations) != len(trace.queries):
        return False
    return _FORMATS[style].fullmatch(trace.model_text) is not None


def traces(completions: list[Any], prompts: list[Any] | None = None) -> list[Trace]:
    return [parse_trace(text) for text in answer_texts(completions, prompts)]


def _golds(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def em_score(trace: Trace, golds: Any) -> float:
    return 1.0 if exact_match(trace.answer, _golds(golds)) else 0.0


def f1_score(trace: Trace, golds: Any) -> float:
    return answer_f1(trace.answer, _golds(golds))


def search_count_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """How many ``<search>`` calls each completion made (a monitor: weight 0)."""
    return [float(len(t.queries)) for t in traces(completions, kwargs.get("prompts"))]


def retrieval_hit_reward(
    completions: list[Any], gold_titles: list[Any] | None = None, **kwargs: Any
) -> list[float | None]:
    """1.0 when a gold passage came back from some search; None for rows without gold titles (monitor)."""
    golds = gold_titles or [None] * len(completions)
    out: list[float | None] = []
    for trace, titles in zip(traces(completions, kwargs.get("prompts")), golds, strict=True):
        wanted = {normalize_answer(t) for t in _golds(titles)}
        out.append(float(bool(wanted & {normalize_answer(t) for t in trace.retrieved_titles})) if wanted else None)
    return out


def answer_in_retrieved_reward(
    completions: list[Any], golden_answers: list[Any] | None = None, **kwargs: Any
) -> list[float]:
    """1.0 when a gold answer appears in the retrieved text (normalised), else 0.0 (monitor)."""
    golds = golden_answers or [None] * len(completions)
    out = []
    for trace, answers in zip(traces(completions, kwargs.get("prompts")), golds, strict=True):
        seen = f" {normalize_answer(trace.retrieved_text[:20_000])} "
        out.append(float(any(f" {normalize_answer(a)} " in seen for a in _golds(answers) if normalize_answer(a))))
    return out


MONITORS = [search_count_reward, retrieval_hit_reward, answer_in_retrieved_reward]
