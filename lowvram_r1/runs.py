"""The run directory: the one contract between a training process and every viewer (CLI, panel, notebook).

    runs/<name>/
      config.yaml        fully resolved RunConfig
      status.json        state (running / finished / failed / stopped), step, max_steps, pid, times, error
      metrics.jsonl      one line per logged training step ({"kind": "train", "step": N, TRL's metric keys...})
                         and one per held-out evaluation ({"kind": "eval", "step": N, "accuracy": ...})
      completions.jsonl  one line per completion: step, prompt, completion, rewards{name: value}, reward, advantage,
                         correct
      STOP               written by a viewer to ask the trainer to save and stop
      checkpoints/       TRL checkpoints (what --resume restarts from)
      adapter/           the final LoRA adapter and tokenizer

A reader never sees a torn record: JSONL lines are appended whole, a final line without its newline is ignored
until it is complete, and status.json is replaced atomically (write, then rename). This module imports nothing
heavy, so viewers can use it without the model stack.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATES = ("running", "finished", "failed", "stopped")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_run_name(name: str) -> str:
    """Reject names that could escape the runs folder or confuse a shell."""
    if not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"run name {name!r}: use letters, digits, '.', '_' and '-' only (no path separators)")
    return name


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def completions(self) -> Path:
        return self.path / "completions.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def stop_file(self) -> Path:
        return self.path / "STOP"

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json, atomically."""
        status = {**self.status(), **fields, "updated": time.time()}
        write_atomic(self.status_file, json.dumps(status, indent=1))
        return status

    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint that was completely written (the recorder marks them)."""
        complete = [p for p in self.checkpoints.glob("checkpoint-*") if (p / "COMPLETE").is_file()]
        return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def write_atomic(path: Path, text: str) -> None:
    # No fsync: readers and a killed trainer only need the rename to be atomic (the page cache survives a killed
    # process); fsync guards against power loss and would cost ~10 ms on every training step.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def append_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append records as whole lines in one write, so a concurrent reader sees all of them or none."""
    payload = "".join(json.dumps(r, ensure_ascii=False, default=_jsonable) + "\n" for r in records)
    if not payload:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(payload)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return str(value)


def read_jsonl(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete records from byte ``offset`` on, and the offset to continue from (incremental reading)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a trailing partial line is someone's write in progress: leave it for later
    records = []
    for line in data[:end].splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line torn by a crash mid-write: skipped, never half-read
    return records, offset + end


def truncate_after(path: Path, step: int) -> int:
    """Keep only complete records with ``step <= step`` (used on resume); returns how many were dropped."""
    records, _ = read_jsonl(path)
    kept = [r for r in records if int(r.get("step", 0)) <= step]
    if path.exists():
        write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    return len(records) - len(kept)


def summarize(run: RunDir) -> dict[str, Any]:
    """One row for `lowvram-r1 runs` and the panel: status, step, last reward, held-out accuracy."""
    status = run.status()
    records, _ = read_jsonl(run.metrics)
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    return {
        "name": run.name,
        "status": status.get("state", "unknown"),
        "step": train[-1]["step"] if train else 0,
        "max_steps": status.get("max_steps"),
        "reward": train[-1].get("reward") if train else None,
        "accuracy": evals[-1].get("accuracy") if evals else None,
        "accuracy_start": evals[0].get("accuracy") if evals else None,
        "task": status.get("task"),
        "model": status.get("model"),
        "error": status.get("error"),
    }


def list_runs(root: str | Path = "runs") -> list[RunDir]:
    """Run directories under ``root`` (those with a status.json), newest first."""
    base = Path(root)
    if not base.is_dir():
        return []
    runs = [RunDir(p) for p in base.iterdir() if (p / "status.json").is_file()]
    return sorted(runs, key=lambda r: r.status_file.stat().st_mtime, reverse=True)


def _protocol(record: dict[str, Any]) -> str:
    samples, temperature = int(record.get("samples", 1)), record.get("temperature", 0.0)
    return "greedy" if not temperature else f"pass@1 over {samples} samples at temperature {temperature:g}"


def summarize_run(run: RunDir, wall_seconds: float) -> dict[str, Any]:
    records, _ = read_jsonl(run.metrics)
    train_records = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    window = max(1, len(train_records) // 10)  # first and last 10% of steps: single steps are noisy

    def mean_reward(chunk: list[dict]) -> float | None:
        values = [r["reward"] for r in chunk if r.get("reward") is not None]
        return sum(values) / len(values) if values else None

    return {
        "run_dir": str(run.path),
        "state": run.status().get("state"),
        "steps": train_records[-1]["step"] if train_records else 0,
        "reward_start": mean_reward(train_records[:window]),
        "reward_end": mean_reward(train_records[-window:]),
        "accuracy_before": evals[0]["accuracy"] if evals else None,
        "accuracy_after": evals[-1]["accuracy"] if len(evals) > 1 else None,
        "eval_rows": int(evals[-1]["n"]) if evals else 0,
        "eval_protocol": _protocol(evals[-1]) if evals else "",
        "wall_seconds": wall_seconds,
    }
