"""Checks on what a task is asked for, run before any row is made: numeric task options of the right kind, and
sizes a procedural generator can make in memory.

    checked_numbers("countdown", {"max_number": 99}, {"max_number": float("inf")})   # ValueError naming the option
    check_generated("countdown", 100_000_000, "train_size")   # ValueError: more rows than a generator makes

A task option whose default is a whole number takes a whole number (an integral float such as ``3.0`` is read as
``3``); one whose default is a float takes any finite number. Options of other kinds are the task's own to check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Rows a procedural task makes per split, in memory, before training starts (countdown makes ~20,000 a second on
# one core, reasoning-gym generators far fewer): a run samples max_steps x batch prompts, far below this.
MAX_GENERATED_ROWS = 1_000_000


def _number(task: str, name: str, default: Any, value: Any) -> Any:
    if isinstance(default, bool) or not isinstance(default, int | float):
        return value
    whole = isinstance(default, int)
    kind = "a whole number" if whole else "a finite number"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"task {task}: option {name} must be {kind} (default {default}), got {value!r}")
    if whole and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"task {task}: option {name} must be a whole number (default {default}), got {value!r}")
        return int(value)
    return value


def checked_numbers(task: str, defaults: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with each numeric option checked against the kind of its default (see the module docstring)."""
    return {name: _number(task, name, defaults.get(name), value) for name, value in options.items()}


def check_generated(task: str, size: int, what: str) -> None:
    """Refuse, before generating, a split larger than :data:`MAX_GENERATED_ROWS` or a negative size."""
    if size < 0:
        raise ValueError(f"task {task}: {what} must be 0 or more, got {size}")
    if size > MAX_GENERATED_ROWS:
        raise ValueError(
            f"task {task}: {what} {size} is more rows than a procedural task makes in memory (at most "
            f"{MAX_GENERATED_ROWS:,}; a run draws max_steps x batch prompts from them): lower it"
        )
