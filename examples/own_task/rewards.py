"""An example reward file: add a reward to any task by name, with TRL's signature.

    lowvram-r1 train --task countdown --model tiny --reward examples/own_task/rewards.py:brevity=0.1

A reward is ``fn(completions, **kwargs) -> list[float | None]``: the completions (plain text, or chat messages
``[{"role": "assistant", "content": ...}]``), and as keyword arguments the dataset's columns (one value per
completion) and TRL's own (``prompts``, ``completion_ids``, ...). Return one number per completion, or None to
leave one unscored. A reward that raises costs that completion its score, not the run.
"""

from __future__ import annotations

from typing import Any

from lowvram_r1.rewards.parsing import completion_text


def brevity(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 for an empty completion, falling linearly to 0.0 at 400 characters: a nudge towards short reasoning."""
    return [max(0.0, 1.0 - len(completion_text(c)) / 400) for c in completions]
