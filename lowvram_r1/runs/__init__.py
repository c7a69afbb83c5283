"""The run directory: the one contract between a training process and every viewer (CLI, panel, notebook).

    runs/<name>/
      config.yaml        fully resolved RunConfig
      status.json        state (running / finished / failed / stopped), step, max_steps, pid, processes (how many
                         trained), times, error
      metrics.jsonl      one line per logged training step ({"kind": "train", "step": N, TRL's metric keys...})
                         and one per held-out evaluation ({"kind": "eval", "step": N, "accuracy": ...})
      completions.jsonl  one line per completion: step, prompt, completion, rewards{name: value}, reward, advantage,
                         correct, process (the index of the training process that generated it)
      STOP               written by a viewer to ask the trainer to save and stop
      checkpoints/       TRL checkpoints (what --resume restarts from), each marked COMPLETE once fully written
      adapter/           the final LoRA adapter and tokenizer
      .trainer.lock      flock-ed by the one live trainer, the main process of several (the OS releases it when the
                         process dies, even kill -9)
      launch.json, train.log   the panel's record of the process it started, and that process's output
      eval.json          `lowvram-r1 eval`'s result

A reader never sees a torn record: JSONL lines are appended whole, a final line without its newline is ignored
until it is complete, and status.json is replaced atomically (write, then rename). Every file name is a
:class:`RunDir` attribute; the readers are in :mod:`lowvram_r1.runs.reader`, the summaries in
:mod:`lowvram_r1.runs.summary`, the one-trainer lifecycle in :mod:`lowvram_r1.runs.lifecycle`. Nothing here
imports the model stack, so viewers use it freely.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

STATES = ("running", "finished", "failed", "stopped")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# status.json's fields and their types: a field of another type (a hand-edited or foreign file) reads as absent
_STATUS_TYPES: dict[str, type | tuple[type, ...]] = {
    "state": str,
    "stage": str,
    "pid": int,
    "step": int,
    "max_steps": int,
    "started": (int, float),
    "finished": (int, float),
    "updated": (int, float),
    "task": str,
    "model": str,
    "error": str,
    "traceback": str,
    "checkpoint": str,
    "reward": (int, float),
    "data": str,
    "processes": int,
}
logger = logging.getLogger(__name__)


def check_run_name(name: str) -> str:
    """Reject names that could escape the runs folder or confuse a shell."""
    if not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"run name {name!r}: use letters, digits, '.', '_' and '-' only (no path separators)")
    return name


@dataclass(frozen=True)
class RunDir:
    """One run directory and the name of every file in it (nothing else in the package spells them)."""

    path: Path

    CONFIG: ClassVar[str] = "config.yaml"
    STATUS: ClassVar[str] = "status.json"
    METRICS: ClassVar[str] = "metrics.jsonl"
    COMPLETIONS: ClassVar[str] = "completions.jsonl"
    CHECKPOINTS: ClassVar[str] = "checkpoints"
    ADAPTER: ClassVar[str] = "adapter"
    STOP: ClassVar[str] = "STOP"
    LOCK: ClassVar[str] = ".trainer.lock"  # held (flock) by the one live trainer; the OS frees it when it dies
    LAUNCH: ClassVar[str] = "launch.json"  # written by the panel beside the run: pid and command of what it started
    LOG: ClassVar[str] = "train.log"  # the panel-started trainer's output
    EVAL: ClassVar[str] = "eval.json"  # `lowvram-r1 eval`'s result
    SMOKE_PROBE: ClassVar[str] = "smoke_probe.json"  # `lowvram-r1 smoke`'s vLLM-vs-trainer probe
    CHECKPOINT_COMPLETE: ClassVar[str] = "COMPLETE"  # written last into a checkpoint: resume trusts only these
    # what a panel writes into a run folder before the trainer starts: such a folder is still ours to train in
    PANEL_FILES: ClassVar[frozenset[str]] = frozenset({LAUNCH, LOG, LOCK})

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def status_file(self) -> Path:
        return self.path / self.STATUS

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def completions(self) -> Path:
        return self.path / self.COMPLETIONS

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def adapter(self) -> Path:
        return self.path / self.ADAPTER

    @property
    def stop_file(self) -> Path:
        return self.path / self.STOP

    @property
    def lock_file(self) -> Path:
        return self.path / self.LOCK

    @property
    def launch_file(self) -> Path:
        return self.path / self.LAUNCH

    @property
    def log_file(self) -> Path:
        return self.path / self.LOG

    @property
    def eval_file(self) -> Path:
        return self.path / self.EVAL

    def status(self) -> dict[str, Any]:
        """status.json as a dict; a missing, torn or foreign file reads as ``{}``, a mistyped field as absent."""
        try:
            loaded = json.loads(read_regular(self.status_file))
        except (OSError, ValueError):
            return {}
        if not isinstance(loaded, dict):
            logger.warning("%s is not a JSON object: ignored", self.status_file)
            return {}
        wrong = [
            k
            for k, kind in _STATUS_TYPES.items()
            if k in loaded
            and loaded[k] is not None
            and (not isinstance(loaded[k], kind) or isinstance(loaded[k], bool))
        ]
        if wrong:
            logger.warning("%s: ignoring mistyped %s", self.status_file, ", ".join(wrong))
        return {k: v for k, v in loaded.items() if k not in wrong}

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json, atomically."""
        status = {**self.status(), **fields, "updated": time.time()}
        write_atomic(self.status_file, json.dumps(status, indent=1))
        return status

    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint that was completely written (the recorder marks them)."""
        complete = [
            p
            for p in self.checkpoints.glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / self.CHECKPOINT_COMPLETE).is_file()
        ]
        return max(complete, key=checkpoint_step, default=None)

    def is_run(self) -> bool:
        """Does this folder hold one of our runs (a config.yaml, or a status.json we wrote)?"""
        return self.config.is_file() or "state" in self.status()

    def foreign_entries(self) -> list[str]:
        """What a folder holds that is neither a run's nor a panel's launch files (empty for our runs)."""
        if not self.path.is_dir() or self.is_run():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.name not in self.PANEL_FILES)


def checkpoint_step(checkpoint: Path) -> int:
    """The global step a ``checkpoint-N`` folder was saved at."""
    return int(checkpoint.name.split("-")[-1])


def read_regular(path: Path, limit: int = 16 << 20) -> str:
    """A run file's text, refusing a symlink (it could show or feed any file the reader can open) and a huge file."""
    if path.is_symlink():
        raise OSError(f"{path} is a symlink: run files must be real files")
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{path} is larger than {limit >> 20} MiB")
    return data.decode("utf-8", "replace")


def write_atomic(path: Path, text: str) -> None:
    # No fsync: readers and a killed trainer only need the rename to be atomic (the page cache survives a killed
    # process); fsync guards against power loss and would cost ~10 ms on every training step.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def append_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append records as whole lines in one write, so a concurrent reader sees all of them or none."""
    payload = "".join(_dumps(r) + "\n" for r in records)
    if not payload:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(payload)


def _dumps(record: dict[str, Any]) -> str:
    """One JSON line; NaN and infinity (TRL's value for a reward that returned None, a nanmean of nothing) become
    null, since strict JSON readers (orjson, the panel's) reject the whole line otherwise."""
    try:
        return json.dumps(record, ensure_ascii=False, default=_jsonable, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(record), ensure_ascii=False, default=_jsonable)


def _finite(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, dict | list | tuple | str):
        value = value.item()  # numpy / torch scalars
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return str(value)
