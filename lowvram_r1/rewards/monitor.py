"""Monitoring signals logged with weight 0: what the panel plots to watch the R1 "aha" happen.

They follow TRL's reward signature, so TRL logs their mean per step as ``rewards/<name>/mean``, but a
weight of 0 keeps them out of the optimised total: the reflection-phrase count, and ``CheckReward`` (the task's
own ``check`` as 0/1: training-batch accuracy).

    >>> reflection_reward(["Wait, let me check: 3*4 is 12, not 14."])
    [2.0]
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lowvram_r1.rewards.checked import CheckedReward
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


CHECK_REWARD = "check_reward"  # the logged name of the correctness monitor: training-batch accuracy
REFLECTION_REWARD = "reflection_reward"


class CheckReward(CheckedReward):
    """Weight-0 reward: 1.0 when the task's ``check`` accepts the completion. Logged as training accuracy.

    The tasks' checks are :func:`~lowvram_r1.rewards.checked.remembered`: when the task's own correctness reward
    has just checked a completion, this reads the verdict instead of checking again.
    """

    def __init__(self, check: Callable[[Any, dict], Any]) -> None:
        super().__init__(check, CHECK_REWARD)
