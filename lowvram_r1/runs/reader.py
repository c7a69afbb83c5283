"""Reading run directories incrementally: a refresh costs only the bytes written since the last one. The CLI,
the panel and the notebook all read runs through this module.

    records, offset = read_jsonl(run.metrics)          # complete records; continue later from offset
    cache = RunCache(Path("runs/NAME"))
    cache.refresh()                                     # reads only what was appended since the previous call
    cache.metric_rows("reward")                         # (step, value) pairs
    cache.completions(step=None, correct="wrong", reward_min=0.5)   # newest matching records, read by offset

A record that is not a JSON object with an integer ``step`` in [0, 2**63) (a torn line, a hand-edited file, a
foreign file) is treated as absent, with one warning naming the file and the byte offset; a field of the wrong type
in an otherwise good record (an ``accuracy`` of ``"x"``, ``"rewards": [1, 2]``) is read as absent
(:mod:`lowvram_r1.runs.records`): no malformed file takes a viewer down. Reading is bounded: files are read in
chunks through :mod:`lowvram_r1.runs.files` (no link, no FIFO), a line longer than :data:`MAX_RECORD` is skipped and
counted without ever being held whole, and the panel's refresh reads at most :data:`REFRESH_BUDGET` bytes a file
(the rest on the next refresh).
Completion records can be large and many (100,000 in a long run): the cache keeps only a small index per record
(byte offset, step, total reward, correct flag) and reads the full records it is asked to show, by offset. Pure
Python plus orjson (a gradio dependency; plain json without it); nothing here imports the model stack.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowvram_r1.runs import STATUS_LIMIT, RunDir, read_regular
from lowvram_r1.runs.files import folder_fd, is_regular, open_regular
from lowvram_r1.runs.records import clean_eval, cleaner_for, step_of

logger = logging.getLogger(__name__)

try:
    from orjson import loads as _loads
except ImportError:  # the panel's extra brings orjson; the readers still work without it, slower
    _loads = json.loads


MAX_RECORD = 8 << 20  # one JSONL line (record) larger than this is skipped and counted, never held whole
CHUNK = 1 << 20  # what one read takes
REFRESH_BUDGET = 64 << 20  # what one panel refresh reads of one file at most; the rest comes on the next refresh


@dataclass
class Scan:
    """Where a reader stands in one JSONL file: the next byte, whether it is inside an oversized line (passed over
    up to its newline, even across calls), and how many lines were skipped as oversized or malformed."""

    offset: int = 0
    skipping: bool = False
    oversized: int = 0
    malformed: int = 0


def scan(
    path: Path,
    state: Scan,
    on_record: Callable[[int, dict[str, Any]], None],
    budget: int | None = None,
    clean: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Scan:
    """Call ``on_record(line_offset, record)`` for each complete, well-formed record after ``state``; returns the
    state to continue from. Reads at most ``budget`` bytes (None: to the end) in chunks of :data:`CHUNK`.

    A trailing line without its newline is a write in progress: it is left for the next call. A line over
    :data:`MAX_RECORD` is skipped (counted in ``oversized``) without being kept in memory. A link, a FIFO or a
    device is not read (it could show any file, or block)."""
    clean = clean or cleaner_for(path)
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return state
    except OSError as error:
        logger.warning("%s: not read (%s)", path, error)
        return state
    state = Scan(state.offset, state.skipping, state.oversized, state.malformed)
    position = state.offset  # the next byte to read
    buffer, buffer_start = bytearray(), state.offset  # the unfinished line and where it starts in the file
    try:
        while budget is None or position - state.offset < budget:
            chunk = os.pread(fd, CHUNK, position)
            if not chunk:
                break
            position += len(chunk)
            if state.skipping:
                newline = chunk.find(b"\n")
                if newline < 0:
                    buffer_start = position
                    continue
                state.skipping, chunk = False, chunk[newline + 1 :]
                buffer_start = position - len(chunk)
            buffer += chunk
            end = buffer.rfind(b"\n") + 1
            _records(path, bytes(buffer[:end]), buffer_start, state, on_record, clean)
            del buffer[:end]
            buffer_start += end
            if len(buffer) > MAX_RECORD:
                logger.warning("%s: record at byte %d is over %d bytes: skipped", path, buffer_start, MAX_RECORD)
                state.oversized += 1
                state.skipping, buffer, buffer_start = True, bytearray(), position
    finally:
        os.close(fd)
    state.offset = buffer_start
    return state


def _records(
    path: Path, data: bytes, start: int, state: Scan, on_record: Callable, clean: Callable[[dict], dict]
) -> None:
    position = 0
    while position < len(data):
        newline = data.index(b"\n", position)
        line = data[position:newline]
        if len(line) > MAX_RECORD:
            logger.warning("%s: record at byte %d is over %d bytes: skipped", path, start + position, MAX_RECORD)
            state.oversized += 1
        elif line.strip():
            try:
                record = _loads(line)
            except (ValueError, RecursionError):
                record = None
            if step_of(record) is not None:
                on_record(start + position, clean(record))
            else:
                state.malformed += 1
                logger.warning("%s: malformed record at byte %d skipped", path, start + position)
        position = newline + 1


def scan_lines(path: Path, offset: int, on_record: Callable[[int, dict[str, Any]], None]) -> int:
    """:func:`scan` from byte ``offset`` to the end; returns the offset to continue from."""
    return scan(path, Scan(offset), on_record).offset


def read_jsonl(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete, well-formed records from byte ``offset`` on, and the offset to continue from."""
    records: list[dict[str, Any]] = []
    end = scan_lines(path, offset, lambda _offset, record: records.append(record))
    return records, end


def truncate_after(path: Path, step: int) -> tuple[int, int]:
    """Keep only well-formed records with ``step <= step`` (used on resume), rewritten atomically record by record
    (never the whole file in memory). Returns (records dropped because they were written after ``step``, lines
    dropped because they were torn, malformed or oversized)."""
    counts = {"late": 0}
    if not is_regular(path):  # missing, or a link / FIFO the claim refused: nothing of ours to rewrite
        return 0, 0
    size = _size(path)
    with folder_fd(path.parent) as parent:
        temporary = f".{path.name}.{os.getpid()}.truncate.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:

                def keep(_offset: int, record: dict[str, Any]) -> None:
                    if record["step"] <= step:
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    else:
                        counts["late"] += 1

                state = scan(path, Scan(), keep, clean=lambda record: record)
            os.replace(temporary, path.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            os.unlink(temporary, dir_fd=parent)
            raise
    torn = 1 if state.skipping or state.offset < size else 0  # a last line without its newline
    return counts["late"], state.malformed + state.oversized + torn


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
        self._metrics_scan = Scan()
        self._completions_scan = Scan()
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
                self._metrics_scan, self._completions_scan = Scan(), Scan()
            self._files = sizes
            before = len(self.metrics) + len(self.index)
            self._metrics_scan = scan(self.run.metrics, self._metrics_scan, self._add_metric, REFRESH_BUDGET)
            if completions:
                self._completions_scan = scan(
                    self.run.completions, self._completions_scan, self.index.add, REFRESH_BUDGET
                )
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
            if step is not None and not (isinstance(step, int) or (isinstance(step, float) and math.isfinite(step))):
                return []  # a step filter of inf or nan matches nothing
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
                result = json.loads(read_regular(path, STATUS_LIMIT))
            except (OSError, ValueError, RecursionError):
                continue
            if isinstance(result, dict):
                return clean_eval(result)
        return None


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size if is_regular(path) else 0
    except OSError:
        return 0


def _read_at(path: Path, offset: int) -> dict[str, Any] | None:
    """The record at ``offset`` (indexed before), read through the one safe open and at most MAX_RECORD bytes."""
    try:
        fd = open_regular(path)
    except OSError:
        return None
    data, newline, size = b"", -1, 1 << 16
    try:
        while newline < 0 and len(data) <= MAX_RECORD:  # most records are a few KiB: read more only if needed
            more = os.pread(fd, size, offset + len(data))
            if not more:
                break
            newline = more.find(b"\n")
            newline = newline if newline < 0 else len(data) + newline
            data, size = data + more, min(size * 4, MAX_RECORD)
    finally:
        os.close(fd)
    try:
        record = _loads(data[:newline]) if newline >= 0 else None
    except (ValueError, RecursionError):
        return None
    return cleaner_for(path)(record) if step_of(record) is not None else None
