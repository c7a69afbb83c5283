"""Property tests: rewards and checks of every task never raise on hostile model output and stay fast.

Hostile means: 100 kB strings, operators like ``**``, dunder names, deep parentheses, huge integers, NaN/inf
words, unicode digits, unbalanced tags — inside and outside the answer block.
"""

from __future__ import annotations

import time
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowvram_r1.tasks import get_task
from tests.tasks.test_tasks import TASK_NAMES, sample

HOSTILE_PIECES = [
    "**",
    "__import__('os').system('x')",
    "(" * 500,
    ")" * 500,
    "9" * 5000,
    "nan",
    "inf",
    "-inf",
    "NaN",
    "٣٤٥",
    "１２３",
    "𝟙𝟚",
    "\\boxed{",
    "\\frac{1}{0}",
    "1/0",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "\\boxed{" * 50,
    "x" * 100_000,
    "Riley is a",
    "$$",
    "\x00",
    "=" * 10,
    "1e999999",
]
# The time bound is in units of this machine's speed, not in seconds: a verdict must not depend on how fast the
# machine is (CI machines are slower or faster than a developer's). One unit is a fixed pure-Python workload
# measured here, in this run (8-12 ms on the 2-core development machine). The slowest hostile case there (math on
# "Riley is a": sympy reads it as a product of symbols) costs ~4 units; the bound leaves three times that.
PER_COMPLETION_UNITS = 12.0


@cache
def machine_unit() -> float:
    """Seconds this machine takes for a fixed pure-Python workload (the fastest of 7, to skip scheduler noise)."""
    times = []
    for _ in range(7):
        started = time.perf_counter()
        sum(i * i for i in range(100_000))
        times.append(time.perf_counter() - started)
    return min(times)


def budget() -> float:
    return PER_COMPLETION_UNITS * machine_unit()


# What a training process has parsed after its first batch: first calls pay one-off sympy / parser set-up costs.
WARM_UP = ["42", "\\frac{1}{2}", "(x+1)^(x+2)", "nan", "Riley is a knight", "x", "\\sqrt{2}", "1e5"]
hostile = st.lists(st.sampled_from(HOSTILE_PIECES) | st.text(max_size=50), min_size=1, max_size=8).map("".join)


def wrapped(text: str) -> list[str]:
    return [text, f"<answer>{text}</answer>", f"<think>{text}</think><answer>{text}</answer>"]


def worst_seconds(name: str, completions: list[str]) -> float:
    task = get_task(name)
    row, _, _ = sample(name)
    columns = {key: [value] * len(completions) for key, value in row.items()}
    started = time.perf_counter()
    for fn in task.reward_funcs:
        values = fn(completions, **columns)
        assert len(values) == len(completions)
        assert all(v is None or isinstance(v, float) for v in values)
    for completion in completions:
        assert task.check(completion, row) in (True, False)
    return (time.perf_counter() - started) / len(completions)


def fastest_seconds(name: str, completions: list[str], tries: int = 3) -> float:
    """``worst_seconds``, measured again (up to ``tries`` times, the fastest kept) when it is over budget: a burst of
    load from another process on the machine must not fail the verdict, a reward that is really slow still does."""
    best = worst_seconds(name, completions)
    for _ in range(tries - 1):
        if best < budget():
            break
        best = min(best, worst_seconds(name, completions))
    return best


def warm_up(name: str) -> None:
    worst_seconds(name, [f"<answer>{text}</answer>" for text in WARM_UP])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile, index=st.integers(min_value=0, max_value=len(TASK_NAMES) - 1))
def test_hostile_output_never_raises_and_stays_fast(text: str, index: int) -> None:
    name = TASK_NAMES[index]
    warm_up(name)
    assert fastest_seconds(name, wrapped(text)) < budget(), name


def test_every_task_on_every_hostile_piece() -> None:
    for name in TASK_NAMES:
        warm_up(name)
        for piece in HOSTILE_PIECES:
            assert fastest_seconds(name, wrapped(piece)) < budget(), (name, piece[:20])
