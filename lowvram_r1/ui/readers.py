"""What the panel reads from run directories, incrementally: a refresh costs only the bytes written since the last.

    cache = RunCache(Path("runs/NAME"))
    cache.refresh()                        # reads only what was appended since the previous call
    cache.plot_frame("reward")             # long-format rows (step, value, series) for a line plot
    cache.completions(step=None, correct="wrong", reward_min=0.5)   # newest matching records, read by offset

Completion records can be large and many (100,000 in a long run): the cache keeps only a small index per record
(byte offset, step, total reward, correct flag) and reads the full records it is asked to show, by offset. Pure
Python plus orjson (a gradio dependency; plain json without it); nothing here imports the model stack.
"""

from __future__ import annotations

import json
import math
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowvram_r1.runs import RunDir

try:
    from orjson import loads as _loads
except ImportError:  # the panel's extra brings orjson; the readers still work without it, slower
    _loads = json.loads

CHECK, REFLECTION = "check_reward", "reflection_reward"
# The live view's plots: title -> how to pick its series out of a metrics record.
PLOTS = ("reward", "reward_std", "completion_length", "kl", "accuracy", "reflection")
PLOT_TITLES = {
    "reward": "Reward: total and per function",
    "reward_std": "Reward std within groups",
    "completion_length": "Completion length (tokens)",
    "kl": "KL to the reference model",
    "accuracy": "Accuracy",
    "reflection": "Reflection-phrase rate ('wait'...)",
}
COMPARE_METRICS = {
    "reward": "reward",
    "train accuracy": "train_accuracy",
    "held-out accuracy": "eval:accuracy",
    "reward std": "reward_std",
    "completion length": "completions/mean_length",
    "KL": "kl",
    "reflection rate": f"rewards/{REFLECTION}/mean",
    "entropy": "entropy",
    "loss": "loss",
}


def scan_lines(path: Path, offset: int, on_record: Callable[[int, dict[str, Any]], None]) -> int:
    """Call ``on_record(line_offset, record)`` for each complete line from byte ``offset``; returns the new offset.

    A trailing line without its newline is a write in progress: it is left for the next call. Torn lines are
    skipped, as :func:`lowvram_r1.runs.read_jsonl` does.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return offset
    end = data.rfind(b"\n") + 1
    position = 0
    while position < end:
        newline = data.index(b"\n", position)
        if newline > position:
            try:
                record = _loads(data[position:newline])
            except ValueError:
                record = None
            if isinstance(record, dict):
                on_record(offset + position, record)
        position = newline + 1
    return offset + end


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


@dataclass
class CompletionIndex:
    """Per completion record: its byte offset, step, total reward and correct flag (-1 unknown, 0, 1)."""

    offsets: array = field(default_factory=lambda: array("q"))
    steps: array = field(default_factory=lambda: array("q"))
    rewards: array = field(default_factory=lambda: array("d"))
    correct: array = field(default_factory=lambda: array("b"))

    def add(self, offset: int, record: dict[str, Any]) -> None:
        self.offsets.append(offset)
        self.steps.append(int(record.get("step") or 0))
        self.rewards.append(_number(record.get("reward")))
        flag = record.get("correct")
        self.correct.append(-1 if flag is None else int(bool(flag)))

    def __len__(self) -> int:
        return len(self.offsets)


class RunCache:
    """Everything the live view shows about one run, kept up to date by :meth:`refresh` (incremental, thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.run = RunDir(Path(path))
        self._lock = threading.Lock()
        self.metrics: list[dict[str, Any]] = []
        self.index = CompletionIndex()
        self._metrics_offset = 0
        self._completions_offset = 0
        self._files: tuple[int, int] = (0, 0)  # sizes seen: a smaller file means it was rewritten (resume)
        self._split: tuple[int, list[dict[str, Any]], list[dict[str, Any]]] = (0, [], [])
        self.version = 0  # bumps whenever new records arrive: lets the UI skip repainting unchanged plots

    def refresh(self, completions: bool = True) -> int:
        """Read what was appended since the last call; returns how many records were new.

        ``completions=False`` reads only metrics (the runs table needs no completion index)."""
        with self._lock:
            sizes = (_size(self.run.metrics), _size(self.run.completions))
            if sizes[0] < self._files[0] or sizes[1] < self._files[1]:
                # --resume truncates records written after the checkpoint: start over from the rewritten files
                self.metrics, self.index, self._split = [], CompletionIndex(), (0, [], [])
                self._metrics_offset = self._completions_offset = 0
            self._files = sizes
            before = len(self.metrics) + len(self.index)
            self._metrics_offset = scan_lines(self.run.metrics, self._metrics_offset, self._add_metric)
            if completions:
                self._completions_offset = scan_lines(self.run.completions, self._completions_offset, self.index.add)
            new = len(self.metrics) + len(self.index) - before
            if new:
                self.version += 1
            return new

    def _add_metric(self, _offset: int, record: dict[str, Any]) -> None:
        self.metrics.append(record)

    # -- plots ---------------------------------------------------------------------------------------------------
    def plot_rows(self, plot: str, max_points: int = 1500) -> list[tuple[int, float, str]]:
        """(step, value, series) rows for one of :data:`PLOTS`, thinned to ``max_points`` per series."""
        rows: list[tuple[int, float, str]] = []
        with self._lock:
            train, evals = self._split_metrics()
        stride = max(1, math.ceil(len(train) / max_points))
        picked = train[::stride] if stride == 1 or not train else [*train[::stride][:-1], train[-1]]
        for key, series in _series(plot, picked):
            rows.extend((int(r["step"]), float(r[key]), series) for r in picked if _finite(r.get(key)))
        if plot == "accuracy":
            if not rows:
                return []  # Gradio's plot keeps its first frame's series: wait until both can be in it
            rows.extend((int(r["step"]), float(r["accuracy"]), "held-out") for r in evals if _finite(r.get("accuracy")))
        return rows

    def _split_metrics(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Train and eval records, computed once per batch of new records (six plots ask for them in a row)."""
        if self._split[0] != len(self.metrics):
            train = [r for r in self.metrics if r.get("kind") == "train"]
            self._split = (len(self.metrics), train, [r for r in self.metrics if r.get("kind") == "eval"])
        return self._split[1], self._split[2]

    def metric_rows(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of one metric; ``eval:<name>`` reads held-out evaluation records."""
        kind, name = ("eval", key[5:]) if key.startswith("eval:") else ("train", key)
        with self._lock:
            return [
                (int(r["step"]), float(r[name])) for r in self.metrics if r.get("kind") == kind and _finite(r.get(name))
            ]

    # -- completions ---------------------------------------------------------------------------------------------
    def steps(self) -> tuple[int, int]:
        """The first and last step that have completion records ((0, 0) when none yet)."""
        with self._lock:
            return (self.index.steps[0], self.index.steps[-1]) if len(self.index) else (0, 0)

    def completions(
        self,
        step: int | None = None,
        correct: str = "all",
        reward_min: float | None = None,
        reward_max: float | None = None,
        limit: int = 24,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` records matching the filters (``step`` None = the latest step); read by offset."""
        with self._lock:
            index, end = self.index, len(self.index)
            if not end:
                return []
            wanted = index.steps[end - 1] if step is None else int(step)
            flag = {"correct": 1, "wrong": 0}.get(correct)
            low = -math.inf if reward_min is None else float(reward_min)
            high = math.inf if reward_max is None else float(reward_max)
            hits: list[int] = []
            for i in range(end - 1, -1, -1):  # newest first; steps only grow, so stop once past the wanted one
                s = index.steps[i]
                if s < wanted:
                    break
                if s != wanted or (flag is not None and index.correct[i] != flag):
                    continue
                r = index.rewards[i]
                if (reward_min is not None or reward_max is not None) and not (low <= r <= high):
                    continue
                hits.append(index.offsets[i])
                if len(hits) >= limit:
                    break
        return [record for record in (_read_at(self.run.completions, o) for o in reversed(hits)) if record]

    def eval_result(self) -> dict[str, Any] | None:
        """``eval.json`` written by ``lowvram-r1 eval`` beside the adapter (in the run directory), if any."""
        for path in (self.run.path / "eval.json", self.run.adapter / "eval.json"):
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                continue
        return None


def _series(plot: str, train: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(metric key, series label) pairs a plot draws, from the keys present in the records."""
    keys: dict[str, None] = {}
    for record in train[:1] + train[-1:]:
        keys.update(dict.fromkeys(record))
    if plot == "reward":
        names = [k.split("/")[1] for k in keys if k.startswith("rewards/") and k.endswith("/mean")]
        # the monitors (correctness, reflection) are weight-0 rewards with plots of their own
        return [("reward", "total"), *((f"rewards/{n}/mean", n) for n in names if n not in (CHECK, REFLECTION))]
    single = {
        "reward_std": ("reward_std", "reward std"),
        "completion_length": ("completions/mean_length", "mean length"),
        "kl": ("kl", "KL"),
        "accuracy": ("train_accuracy", "training batch"),
        "reflection": (f"rewards/{REFLECTION}/mean", "reflection rate"),
    }
    return [single[plot]]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_at(path: Path, offset: int) -> dict[str, Any] | None:
    with open(path, "rb") as handle:
        handle.seek(offset)
        line = handle.readline()
    try:
        record = _loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
