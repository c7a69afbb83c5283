"""Length and repetition shaping for any task, from TRL's own rewards (``trl.rewards`` imports neither torch nor
transformers): DAPO's soft overlong punishment and an n-gram repetition penalty, both on completion token ids.

    funcs = shaping_rewards(cfg.task, cfg.generation.max_completion_length)   # [] unless switched on

``task.overlong_buffer: 64`` penalises completions within 64 tokens of ``max_completion_length`` linearly down to
-1 (DAPO, Eq. 13); ``task.ngram_penalty: -1.0`` gives ``-1.0 ×`` the share of repeated token 3-grams. Each is
added to the task's rewards with weight 1.0 and logged under TRL's names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def shaping_rewards(task: Any, max_completion_length: int) -> list[Callable[..., list[float]]]:
    """The shaping rewards ``task`` (a ``TaskSettings``) switches on; an empty list by default."""
    if not (task.overlong_buffer or task.ngram_penalty):
        return []  # without importing trl: the unsloth backend must import it first (train's pre-flight runs here)
    from trl.rewards import get_repetition_penalty_reward, get_soft_overlong_punishment

    funcs: list[Callable[..., list[float]]] = []
    if task.overlong_buffer:
        funcs.append(get_soft_overlong_punishment(max_completion_length, task.overlong_buffer))
    if task.ngram_penalty:
        funcs.append(get_repetition_penalty_reward(ngram_size=3, max_penalty=task.ngram_penalty))
    return funcs
