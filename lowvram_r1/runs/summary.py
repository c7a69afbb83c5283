"""One-line summaries of runs: what `lowvram-r1 runs`, the panel's Runs table and a finished `train` print.

for run in list_runs("runs"):
    print(summarize(run))
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lowvram_r1.runs import RunDir
from lowvram_r1.runs.files import is_real_dir, is_regular
from lowvram_r1.runs.lifecycle import run_state
from lowvram_r1.runs.reader import Scan, read_jsonl, scan


def summarize(run: RunDir) -> dict[str, Any]:
    """One row for `lowvram-r1 runs` and the panel: status (the one liveness rule, :func:`run_state`: a killed run
    is ``died``), step, processes, last reward, held-out accuracy. The metrics are streamed: only the last train
    record and the first and last eval records are kept, however long the file."""
    status = run.status()
    kept: dict[str, dict[str, Any]] = {}

    def keep(_offset: int, record: dict[str, Any]) -> None:
        kind = record.get("kind")
        if kind == "train":
            kept["train"] = record
        elif kind == "eval":
            kept.setdefault("first_eval", record)
            kept["eval"] = record

    scan(run.metrics, Scan(), keep)
    train = [kept["train"]] if "train" in kept else []
    evals = [kept["first_eval"], kept["eval"]] if "eval" in kept else []
    return {
        "name": run.name,
        "status": run_state(run),
        "step": train[-1]["step"] if train else 0,
        "max_steps": status.get("max_steps"),
        "processes": status.get("processes", 1),  # training processes (runs from before it was recorded: one)
        "reward": _number(train[-1].get("reward")) if train else None,
        "accuracy": _number(evals[-1].get("accuracy")) if evals else None,
        "accuracy_start": _number(evals[0].get("accuracy")) if evals else None,
        "task": status.get("task"),
        "model": status.get("model"),
        "error": status.get("error"),
    }


def list_runs(root: str | Path = "runs") -> list[RunDir]:
    """Run folders under ``root`` — real folders (not symlinks) with a status.json or a panel's launch.json —,
    newest first. The one lister: the CLI's `runs`, the panel and the notebook use it."""
    base = Path(root)
    if not base.is_dir():
        return []
    runs = [
        RunDir(p)
        for p in base.iterdir()
        if not p.name.startswith(".")
        and is_real_dir(p)
        and any(is_regular(p / name) for name in (RunDir.STATUS, RunDir.LAUNCH))
    ]
    return sorted(runs, key=_mtime, reverse=True)


def _mtime(run: RunDir) -> float:
    for path in (run.status_file, run.launch_file):
        try:
            return path.lstat().st_mtime
        except OSError:
            continue
    return 0.0


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None and math.isfinite(number) else 0


def _protocol(record: dict[str, Any]) -> str:
    samples, temperature = _count(record.get("samples", 1)), record.get("temperature") or 0.0
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
        "accuracy_before": evals[0].get("accuracy") if evals else None,
        "accuracy_after": evals[-1].get("accuracy") if len(evals) > 1 else None,
        "eval_rows": _count(evals[-1].get("n")) if evals else 0,
        "eval_protocol": _protocol(evals[-1]) if evals else "",
        "wall_seconds": wall_seconds,
    }
