"""Monitoring signals logged with weight 0: what the panel plots to watch the R1 "aha" happen.

They follow TRL's reward signature, so TRL logs their mean per step as ``rewards/<name>/mean``, but a
weight of 0 keeps them out of the optimised total: the reflection-phrase count, and ``CheckReward`` (the task's
own ``check`` as 0/1: training-batch accuracy).

    >>> reflection_reward(["Wait, let me check: 3*4 is 12, not 14."])
    [2.0]
"""

from __future__ import annotations

import re
from typing import Any

from lowvram_r1.rewards.parsing import completion_text

# Phrases DeepSeek-R1 and follow-ups count as self-reflection ("aha moment" markers).
REFLECTION_PHRASES = (
    "wait",
    "let me check",
    "let me verify",
    "let me re-check",
    "re-evaluate",
    "reevaluate",
    "verify",
    "double-check",
    "on second thought",
    "i made a mistake",
)
_REFLECTION = re.compile(r"\b(" + "|".join(re.escape(p) for p in REFLECTION_PHRASES) + r")\b", re.IGNORECASE)


def reflection_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """How many reflection phrases each completion holds (counted, not rewarded: use with weight 0)."""
    return [float(len(_REFLECTION.findall(completion_text(c)))) for c in completions]


class CheckReward:
    """Weight-0 reward: 1.0 when ``task.check`` accepts the completion. Logged as training accuracy.

    A class (not a closure) so that it pickles for multi-process launchers; it looks the task up by name.
    """

    __name__ = "check_reward"

    def __init__(self, task_name: str) -> None:
        self.task_name = task_name

    def __call__(self, completions: list[Any], **columns: Any) -> list[float]:
        from lowvram_r1.tasks import get_task  # here, not at import: the tasks import these rewards

        check = get_task(self.task_name).check
        lists = {k: v for k, v in columns.items() if isinstance(v, list) and len(v) == len(completions)}
        return [1.0 if check(c, {k: v[i] for k, v in lists.items()}) else 0.0 for i, c in enumerate(completions)]
