"""The types of the fields in run records: a value of the wrong type, in an otherwise well-formed record, is read as
absent, so one hand-edited or foreign field never breaks a view (the runs table, Live, Compare, the notebook).

    step_of(record)             # the record's step, an int in [0, 2**63), or None: the record is malformed
    clean_metric(record)        # metrics.jsonl: kind a string, every other field a number (or null)
    clean_completion(record)    # completions.jsonl: prompt/completion strings, rewards {name: number}, ...
    clean_eval(result)          # eval.json: finite numbers, split a string

A step at or past 2**63 does not fit the readers' 64-bit index: such a record is malformed, like one without a step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEP_LIMIT = 1 << 63


def step_of(record: Any) -> int | None:
    """The record's step when it is a JSON object with an integer step in [0, 2**63), else None."""
    step = record.get("step") if isinstance(record, dict) else None
    if isinstance(step, int) and not isinstance(step, bool) and 0 <= step < STEP_LIMIT:
        return step
    return None


def is_number(value: Any) -> bool:
    """An int (within 64 bits) or a float, never a bool: what every numeric field must be."""
    if isinstance(value, bool):
        return False
    return isinstance(value, float) or (isinstance(value, int) and -STEP_LIMIT <= value < STEP_LIMIT)


def clean_metric(record: dict[str, Any]) -> dict[str, Any]:
    """A metrics record with each field of the wrong type left out (``kind`` a string, the rest numbers or null)."""
    cleaned: dict[str, Any] = {"step": record["step"]}
    for key, value in record.items():
        if key == "step":
            continue
        if key == "kind":
            if isinstance(value, str):
                cleaned[key] = value
        elif value is None or is_number(value):
            cleaned[key] = value
    return cleaned


_COMPLETION_TYPES: dict[str, Callable[[Any], bool]] = {
    "prompt": lambda v: isinstance(v, str),
    "completion": lambda v: isinstance(v, str),
    "reward": lambda v: v is None or is_number(v),
    "advantage": lambda v: v is None or is_number(v),
    "correct": lambda v: v is None or isinstance(v, bool),
    "process": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < STEP_LIMIT,
}


def clean_completion(record: dict[str, Any]) -> dict[str, Any]:
    """A completion record with its known fields of the right type only; ``rewards`` keeps its numeric entries."""
    cleaned: dict[str, Any] = {"step": record["step"]}
    for key, accepts in _COMPLETION_TYPES.items():
        if key in record and accepts(record[key]):
            cleaned[key] = record[key]
    rewards = record.get("rewards")
    if isinstance(rewards, dict):
        cleaned["rewards"] = {
            str(k): v for k, v in rewards.items() if isinstance(k, str) and (v is None or is_number(v))
        }
    return cleaned


def clean_eval(result: dict[str, Any]) -> dict[str, Any]:
    """eval.json with only its finite numbers and its split name (what the views read)."""
    cleaned = {k: v for k, v in result.items() if is_number(v) and math.isfinite(v)}
    if isinstance(result.get("split"), str):
        cleaned["split"] = result["split"]
    return cleaned


def cleaner_for(path: Path) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The cleaner of a run file by its name (another JSONL file's records pass as they are)."""
    from lowvram_r1.runs import RunDir

    return {RunDir.METRICS: clean_metric, RunDir.COMPLETIONS: clean_completion}.get(Path(path).name, dict)
