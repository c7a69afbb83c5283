"""A task's ``check`` as a reward, computed once per completion.

    check = remembered(check)                                   # decorate the task's check (module level)
    correctness_reward = check_reward(check, "correctness_reward")   # 1.0 when check accepts, else 0.0

Both the task's correctness reward and the weight-0 correctness monitor
(:class:`~lowvram_r1.rewards.monitor.CheckReward`) call the same remembered ``check`` with the same row, so the
second call per completion is a dictionary lookup: for ``math`` that is one math-verify run, not two.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import Any

from lowvram_r1.rewards.parsing import completion_text

_MEMORY = 8192  # verdicts kept: a few generation batches' worth


def remembered(check: Callable[[Any, dict], Any]) -> Callable[[Any, dict], Any]:
    """``check`` with its last verdicts remembered by (completion text, row): pure checks only."""
    cache: OrderedDict[tuple[str, str], Any] = OrderedDict()

    @wraps(check)
    def checked(completion: Any, row: dict) -> Any:
        key = (completion_text(completion), json.dumps(row, sort_keys=True, default=str))
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        verdict = cache[key] = check(completion, row)
        if len(cache) > _MEMORY:
            cache.popitem(last=False)
        return verdict

    return checked


def batch_rows(completions: list[Any], columns: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per completion from TRL's reward keyword columns (the dataset's columns, one value per completion)."""
    lists = {k: v for k, v in columns.items() if isinstance(v, list) and len(v) == len(completions)}
    return [{k: v[i] for k, v in lists.items()} for i in range(len(completions))]


class CheckedReward:
    """1.0 when ``check`` accepts the completion for its row, else 0.0 (TRL's reward signature)."""

    def __init__(self, check: Callable[[Any, dict], Any], name: str) -> None:
        self.check = check
        self.__name__ = name  # what TRL logs it as

    def __call__(self, completions: list[Any], **columns: Any) -> list[float]:
        rows = batch_rows(completions, columns)
        return [1.0 if self.check(c, row) else 0.0 for c, row in zip(completions, rows, strict=True)]


def check_reward(check: Callable[[Any, dict], Any], name: str) -> CheckedReward:
    """The reward of a task whose correctness is exactly its ``check``."""
    return CheckedReward(check, name)
