"""Reading run directories incrementally: a refresh costs only the bytes written since the last one. The CLI,
the panel and the notebook all read runs through this module.

    records, offset = read_jsonl(run.metrics)          # complete records; continue later from offset
    cache = RunCache(Path("runs/NAME"))
    cache.refresh()                                     # reads only what was appended since the previous call
    cache.metric_rows("reward")                         # (step, value) pairs
    cache.completions(step=None, correct="wrong", reward_min=0.5)   # newest matching records, read by offset

A record that is not a JSON object with an integer ``step`` (a torn line, a hand-edited file, a foreign file) is
treated as absent, with one warning naming the file and the byte offset: no malformed file takes a viewer down.
Completion records can be large and many (100,000 in a long run): the cache keeps only a small index per record
(byte offset, step, total reward, correct flag) and reads the full records it is asked to show, by offset. Pure
Python plus orjson (a gradio dependency; plain json without it); nothing here imports the model stack.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowvram_r1.runs import RunDir, read_regular, write_atomic

logger = logging.getLogger(__name__)

try:
    from orjson import loads as _loads
except ImportError:  # the panel's extra brings orjson; the readers still work without it, slower
    _loads = json.loads


def scan_lines(path: Path, offset: int, on_record: Callable[[int, dict[str, Any]], None]) -> int:
    """Call ``on_record(line_offset, record)`` for each complete, well-formed record from byte ``offset``; returns
    the offset to continue from.

    A trailing line without its newline is a write in progress: it is left for the next call. A line that is not
    a JSON object with an integer ``step`` is skipped with a warning. A symlink is not read (it could point at any
    file the reader may open).
    """
    if path.is_symlink():
        logger.warning("%s is a symlink: not read (run files must be real files)", path)
        return offset
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except (FileNotFoundError, IsADirectoryError):
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
            if _well_formed(record):
                on_record(offset + position, record)
            else:
                logger.warning("%s: malformed record at byte %d skipped", path, offset + position)
        position = newline + 1
    return offset + end


def _well_formed(record: Any) -> bool:
    step = record.get("step") if isinstance(record, dict) else None
    return isinstance(step, int) and not isinstance(step, bool)


def read_jsonl(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete, well-formed records from byte ``offset`` on, and the offset to continue from."""
    records: list[dict[str, Any]] = []
    end = scan_lines(path, offset, lambda _offset, record: records.append(record))
    return records, end


def truncate_after(path: Path, step: int) -> tuple[int, int]:
    """Keep only well-formed records with ``step <= step`` (used on resume). Returns (records dropped because they
    were written after ``step``, lines dropped because they were torn or malformed)."""
    if not path.is_file() or path.is_symlink():
        return 0, 0
    with open(path, "rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    records, _ = read_jsonl(path)
    kept = [r for r in records if r["step"] <= step]
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    return len(records) - len(kept), lines - len(records)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


@dataclass
class CompletionIndex:
    """Per completion record: its byte offset, step, total reward, correct flag (-1 unknown, 0, 1) and how many of
    its rewards are missing (None: the reward function returned None or failed on it; run health counts them)."""

    offsets: array = field(default_factory=lambda: array("q"))
    steps: array = field(default_factory=lambda: array("q"))
    rewards: array = field(default_factory=lambda: array("d"))
    correct: array = field(default_factory=lambda: array("b"))
    missing: array = field(default_factory=lambda: array("h"))

    def add(self, offset: int, record: dict[str, Any]) -> None:
        self.offsets.append(offset)
        self.steps.append(int(record.get("step") or 0))
        self.rewards.append(_number(record.get("reward")))
        flag = record.get("correct")
        self.correct.append(-1 if flag is None else int(bool(flag)))
        per_reward = record.get("rewards")
        self.missing.append(sum(v is None for v in per_reward.values()) if isinstance(per_reward, dict) else 0)

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

    # -- metrics -----------------------------------------------------------------------------------------------
    def split_metrics(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Train and eval records, computed once per batch of new records (six plots ask for them in a row)."""
        with self._lock:
            if self._split[0] != len(self.metrics):
                train = [r for r in self.metrics if r.get("kind") == "train"]
                self._split = (len(self.metrics), train, [r for r in self.metrics if r.get("kind") == "eval"])
            return self._split[1], self._split[2]

    def metric_rows(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of one metric; ``eval:<name>`` reads held-out evaluation records."""
        kind, name = ("eval", key[5:]) if key.startswith("eval:") else ("train", key)
        with self._lock:
            return [
                (int(r["step"]), float(r[name])) for r in self.metrics if r.get("kind") == kind and finite(r.get(name))
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

    def records_at(self, positions: list[int]) -> list[dict[str, Any]]:
        """The full completion records at these index positions (read by offset), in the order given."""
        with self._lock:
            offsets = [self.index.offsets[i] for i in positions if 0 <= i < len(self.index)]
        return [record for record in (_read_at(self.run.completions, o) for o in offsets) if record]

    def eval_result(self) -> dict[str, Any] | None:
        """``eval.json`` written by ``lowvram-r1 eval`` beside the adapter (in the run directory), if any."""
        for path in (self.run.eval_file, self.run.adapter / RunDir.EVAL):
            try:
                result = json.loads(read_regular(path))
            except (OSError, ValueError):
                continue
            if isinstance(result, dict):
                return result
        return None


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_at(path: Path, offset: int) -> dict[str, Any] | None:
    if path.is_symlink():
        return None
    with open(path, "rb") as handle:
        handle.seek(offset)
        line = handle.readline()
    try:
        record = _loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
