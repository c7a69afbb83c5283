"""Monitoring signals logged with weight 0: what the panel plots to watch the R1 "aha" happen.

They follow TRL's reward signature, so TRL logs their mean per step as ``rewards/<name>/mean``, but a
weight of 0 keeps them out of the optimised total.

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
