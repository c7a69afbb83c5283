"""Format rewards shared by the tasks that answer as ``<think>…</think><answer>…</answer>``.

All follow TRL's reward signature ``fn(completions, **columns) -> list[float]``.
Why not ``trl.rewards.think_format_reward``: importing ``trl`` pulls in torch, and reward modules must
import (and pickle) without the model stack; these are three regexes.

    >>> strict_format_reward(["<think>\\n2+2=4\\n</think>\\n<answer>\\n4\\n</answer>\\n"])
    [1.0]
"""

from __future__ import annotations

import re
from typing import Any

from lowvram_r1.rewards.parsing import answer_texts

_STRICT = re.compile(r"^<think>\n[^<]*?\n</think>\n<answer>\n[^<]*?\n</answer>\n?$", re.DOTALL)
# Soft: a short preamble is allowed (TinyZero's prefill "Let me solve this step by step.\n<think>" has one).
_SOFT = re.compile(r"^[^<]{0,200}<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)


def strict_format_reward(completions: list[Any], prompts: list[Any] | None = None, **kwargs: Any) -> list[float]:
    """1.0 for exactly ``<think>\\n…\\n</think>\\n<answer>\\n…\\n</answer>``, newlines included; else 0.0."""
    return [1.0 if _STRICT.match(text) else 0.0 for text in answer_texts(completions, prompts)]


def soft_format_reward(completions: list[Any], prompts: list[Any] | None = None, **kwargs: Any) -> list[float]:
    """1.0 when the completion is a think block followed by an answer block, whatever the spacing; else 0.0."""
    return [1.0 if _SOFT.match(text) else 0.0 for text in answer_texts(completions, prompts)]


def tag_count_score(text: str) -> float:
    """0.25 for each of the four tags present exactly once, less a small penalty per character after ``</answer>``.

    A partial-credit signal that lets a model that has not found the format yet climb towards it.
    """
    score = 0.0
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        if text.count(tag) == 1:
            score += 0.25
    if text.count("</answer>") == 1:
        trailing = text.split("</answer>", 1)[1].strip()
        score -= min(len(trailing) * 0.001, 0.25)
    return max(score, 0.0)


def tag_count_reward(completions: list[Any], prompts: list[Any] | None = None, **kwargs: Any) -> list[float]:
    """Partial format credit, from 0.0 to 1.0: see :func:`tag_count_score`."""
    return [tag_count_score(text) for text in answer_texts(completions, prompts)]
