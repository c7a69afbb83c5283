"""What the Colab notebook (``notebooks/lowvram_r1_colab.ipynb``) calls: CLI steps, a live view of a training run
and before/after evaluation tables (its chat cell calls :func:`lowvram_r1.train.evaluate.answer`).

The notebook holds no reward, task or training logic. Training runs as a ``lowvram-r1 train`` child process (the
same command docs/cli.md shows), so the notebook kernel stays free to draw: :func:`follow` reads the run directory
while the child writes it, exactly as the panel and ``lowvram-r1 runs`` do. Matplotlib and IPython are imported
only inside the functions that draw. Like the CLI, this is a front end: it prints for the reader.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lowvram_r1.runs.files import write_file
from lowvram_r1.runs.health import RunHealth
from lowvram_r1.runs.lifecycle import run_state
from lowvram_r1.runs.reader import RunCache
from lowvram_r1.runs.series import HELD_OUT, plot_series

CLI = [sys.executable, "-m", "lowvram_r1.cli"]  # the kernel's own interpreter: no reliance on PATH in Colab


def gpu_memory_gb() -> float | None:
    """Total memory of the first CUDA GPU in GiB, or None without one (the plan then shows no verdict).

    Read through nvidia-smi: asking torch would create a CUDA context in the kernel that it keeps for the whole
    session, and that memory would be missing from the training child process the plan is made for.
    """
    from lowvram_r1.models.hardware import gpu_memory_without_context

    return gpu_memory_without_context()


def cli(*args: str) -> None:
    """Run ``lowvram-r1 ARGS`` and show its output as it comes; raise with the exit code when it fails."""
    process = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="")
    if process.wait() != 0:
        raise RuntimeError(f"lowvram-r1 {' '.join(args)} failed with exit code {process.returncode} (output above)")


class RunView:
    """One run as the notebook draws it; reading is the panel's incremental :class:`RunCache` (only what was
    appended since the last :meth:`refresh` is read, and a resumed run's rewritten files are read afresh)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.cache = RunCache(Path(run_dir))
        self.run = self.cache.run
        self.health = RunHealth(self.cache)  # run health: recomputed only when new records arrive

    def refresh(self) -> None:
        self.cache.refresh()

    def state(self, starting: bool = False) -> str:
        """running / starting / died / finished / stopped / failed / unknown: the rule `lowvram-r1 runs` and the
        panel use (:func:`~lowvram_r1.runs.lifecycle.run_state`); ``starting``: the notebook's child still runs."""
        return run_state(self.run, starting)

    @property
    def train(self) -> list[dict[str, Any]]:
        return [m for m in self.cache.metrics if m.get("kind") == "train"]

    @property
    def evals(self) -> list[dict[str, Any]]:
        return [m for m in self.cache.metrics if m.get("kind") == "eval"]

    @property
    def latest_completions(self) -> list[dict[str, Any]]:
        return self.cache.completions(limit=2)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        rows = self.cache.metric_rows(key)
        return [step for step, _ in rows], [value for _, value in rows]

    def figure(self) -> Any:
        """Reward (total and each function), held-out accuracy, completion length and reflection rate."""
        import matplotlib.pyplot as plt

        figure, (reward_ax, accuracy_ax, length_ax) = plt.subplots(1, 3, figsize=(15, 3.6))
        (total_key, total_label), *per_reward = plot_series("reward", self.train)  # the panel's series, same names
        steps, total = self.series(total_key)
        reward_ax.plot(steps, total, label=total_label, linewidth=2, alpha=0.5 if len(total) > 20 else 1)
        if len(total) > 20:  # per-step rewards are noisy: a moving average shows the trend
            window = max(5, len(total) // 20)
            smooth = [sum(total[max(0, i - window + 1) : i + 1]) / min(window, i + 1) for i in range(len(total))]
            reward_ax.plot(steps, smooth, color="tab:blue", linewidth=2.5, label=f"{total_label}, mean of {window}")
        for key, label in per_reward:  # each reward function (the monitors have plots of their own)
            reward_ax.plot(*self.series(key), label=label, alpha=0.7)
        reward_ax.set_title("reward per step")
        reward_ax.legend(fontsize=7)
        for key, label in plot_series("accuracy", self.train):
            accuracy_ax.plot(*self.series(key), label=label, alpha=0.6)
        key, label = HELD_OUT
        held_out = [(e["step"], e[key]) for e in self.evals if key in e]
        if held_out:
            accuracy_ax.plot(*zip(*held_out, strict=True), "o-", label=label, linewidth=2)
        accuracy_ax.set_title("accuracy")
        accuracy_ax.legend(fontsize=7)
        for key, label in plot_series("completion_length", self.train):
            length_ax.plot(*self.series(key), label=label)
        length_ax.set_title("completion length (tokens)")
        reflection_ax = length_ax.twinx()
        ((key, label),) = plot_series("reflection", self.train)
        reflection_ax.plot(*self.series(key), color="tab:red", alpha=0.6)
        reflection_ax.set_ylabel(label, color="tab:red")
        from matplotlib.ticker import MaxNLocator

        for ax in (reward_ax, accuracy_ax, length_ax):
            ax.set_xlabel("step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        figure.tight_layout()
        return figure

    def health_text(self) -> str:
        """The run's health findings, worst first, each with what to change (docs/health.md)."""
        findings = self.health.findings()
        if not findings:
            return "Health: no finding"
        lines = [f"Health: {len(findings)} finding{'s' if len(findings) > 1 else ''}, worst first"]
        for finding in findings:
            lines.append(f"  {finding.severity.upper()} {finding.id}: {finding.evidence.get('summary', '')}")
            lines.append(f"    -> {finding.advice}")
        return "\n".join(lines)

    def completions_text(self) -> str:
        lines = []
        for record in self.latest_completions:
            verdict = "correct" if record.get("correct") else "wrong"
            lines.append(f"--- step {record.get('step')}  reward {record.get('reward', 0):.2f}  {verdict}")
            lines.append(str(record.get("completion", "")).strip()[:1200])
        return "\n".join(lines)


def follow(train_args: list[str], run_dir: str | Path, every: float = 10.0) -> RunView:
    """Start ``lowvram-r1 train TRAIN_ARGS --output-dir RUN_DIR`` and redraw its curves and latest completions
    every ``every`` seconds until it ends. The trainer's own output goes to ``RUN_DIR.log``; its tail is shown
    when it fails. Interrupting the cell stops the run gracefully (it saves and can be resumed)."""
    import matplotlib.pyplot as plt
    from IPython.display import clear_output, display

    run_dir = Path(run_dir)
    log_path = run_dir.with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    view = RunView(run_dir)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*CLI, "train", *train_args, "--output-dir", str(run_dir), "--no-progress"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            while True:
                finished = process.poll() is not None
                view.refresh()
                clear_output(wait=True)
                status = view.run.status()
                print(
                    f"{run_dir.name}: {view.state(starting=not finished)}, step {status.get('step', 0)}"
                    f"/{status.get('max_steps', '?')}"
                )
                if view.train:
                    figure = view.figure()
                    display(figure)
                    plt.close(figure)
                    print(view.health_text())
                    print(view.completions_text())
                if finished:
                    break
                time.sleep(every)
        except KeyboardInterrupt:
            write_file(view.run.stop_file, "stop requested from the notebook")  # never through a link
            process.wait()
            print("stopped: the run saved a checkpoint; add --resume to the same command to continue")
            return view
    if process.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"training failed (exit {process.returncode}); the end of {log_path}:\n{tail}")
    return view


def before_after(before: str | Path, after: str | Path) -> str:
    """A markdown table of two ``eval.json`` files side by side (accuracy, pass@k, maj@k, format, length)."""
    first, second = json.loads(Path(before).read_text()), json.loads(Path(after).read_text())
    skipped = ("seconds", "temperature", "n", "samples")
    keys = [k for k in first if k in second and isinstance(first[k], float) and k not in skipped]
    rows = ["| metric | before | after | change |", "|---|---|---|---|"]
    for key in keys:
        percent = key != "mean_length"
        shown = (lambda v: f"{100 * v:.1f}%") if percent else (lambda v: f"{v:.1f}")
        change = second[key] - first[key]
        rows.append(
            f"| {key} | {shown(first[key])} | {shown(second[key])} | "
            f"{'+' if change >= 0 else ''}{100 * change if percent else change:.1f}{' pts' if percent else ''} |"
        )
    return "\n".join(rows)


EXAMPLES_URL = "https://raw.githubusercontent.com/lowvram-r1/lowvram-r1/main/examples"  # a pip install has no examples/


def example(spec: str) -> str:
    """A spec into ``examples/``, made absolute: ``example("own_task/parity_task.py:TASK")``, for the notebook's
    "Your own task" cells. From the checkout the package runs from (an editable install) or the working folder; a
    package installed from git has no ``examples/``: the file is downloaded into ``./examples/`` once."""
    import lowvram_r1

    path, sep, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    for root in (Path(lowvram_r1.__file__).resolve().parent.parent / "examples", Path.cwd() / "examples"):
        if (root / path).is_file():
            return f"{root / path}{sep}{name}"
    import urllib.request

    target = Path.cwd() / "examples" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(f"{EXAMPLES_URL}/{path}", timeout=30) as response:
            target.write_bytes(response.read())
    except OSError as error:
        raise FileNotFoundError(f"examples/{path}: not in a checkout, and the download failed ({error})") from None
    return f"{target}{sep}{name}"
