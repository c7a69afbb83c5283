"""Length and repetition shaping shared by tasks: DAPO's soft overlong penalty and an n-gram repetition penalty.

Both are factories because their knobs belong to the task (or the run), not to a global config; the returned
callables have TRL's signature and a ``*_reward`` name. Why not ``trl.rewards``' versions: importing ``trl``
pulls in torch, and reward modules must import and pickle without the model stack.

    >>> overlong = OverlongPenalty(max_chars=100, soft_chars=20)
    >>> overlong(["x" * 70, "x" * 90, "x" * 120])
    [0.0, -0.5, -1.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lowvram_r1.rewards.parsing import completion_text


@dataclass(frozen=True)
class OverlongPenalty:
    """0 up to ``max_chars - soft_chars``, then linearly down to -1 at ``max_chars`` and beyond (DAPO)."""

    __name__ = "overlong_reward"  # what TRL logs it as
    max_chars: int
    soft_chars: int

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float]:
        start = self.max_chars - self.soft_chars
        scores = []
        for completion in completions:
            length = len(completion_text(completion))
            scores.append(0.0 if length <= start else max(-1.0, -(length - start) / max(self.soft_chars, 1)))
        return scores


@dataclass(frozen=True)
class RepetitionPenalty:
    """``max_penalty`` × the share of repeated word n-grams (0 for text with no repeated n-gram)."""

    __name__ = "repetition_reward"
    ngram: int = 3
    max_penalty: float = -1.0

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float]:
        scores = []
        for completion in completions:
            words = completion_text(completion).lower().split()[:20_000]
            grams = [tuple(words[i : i + self.ngram]) for i in range(len(words) - self.ngram + 1)]
            repeated = 1 - len(set(grams)) / len(grams) if grams else 0.0
            scores.append(repeated * self.max_penalty if repeated else 0.0)
        return scores
