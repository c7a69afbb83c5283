"""The panel's state and the functions its callbacks call: one object per served panel, no Gradio in here.

    panel = Panel(Path("runs"), PACKAGE_RECIPES)
    view = panel.live("countdown-tiny-1", step=None, correct="all")   # what the Live tab paints
    panel.runs_table()                                                # what the Runs tab shows

Per-run caches (:class:`~lowvram_r1.runs.reader.RunCache`) live here, so every refresh reads only new bytes; the
benchmark (``bench/panel.py``) times these same functions.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lowvram_r1.runs import RunDir, check_run_name
from lowvram_r1.runs.health import RunHealth
from lowvram_r1.runs.reader import RunCache
from lowvram_r1.ui import health, views
from lowvram_r1.ui.controls import Launcher, log_tail
from lowvram_r1.ui.launch_command import Launch, LaunchRequest, build_launch, form_config
from lowvram_r1.ui.memory import Gpu, detect_gpu, plan_markdown
from lowvram_r1.ui.plots import COMPARE_METRICS, PLOT_TITLES, PLOTS, plot_rows

EMPTY_TITLES = {"kl": "KL: TRL logs it only with KL beta > 0"}


def frame(rows: list[tuple[int, float, str]], label: str) -> pd.DataFrame:
    """(step, value, label) rows with fixed dtypes: Gradio picks an axis type from the dtype, and an empty frame's
    object columns would give a categorical axis that later points never leave."""
    steps, values, labels = zip(*rows, strict=True) if rows else ((), (), ())
    return pd.DataFrame(
        {
            "step": pd.Series(steps, dtype="int64"),
            "value": pd.Series(values, dtype="float64"),
            label: pd.Series(labels, dtype="string"),
        }
    )


@dataclass
class LiveView:
    status: str
    evaluation: str
    plots: dict[str, pd.DataFrame]
    titles: dict[str, str]  # a plot with nothing to draw says why
    cards: str
    steps: tuple[int, int]
    key: tuple  # changes exactly when something shown changed: the UI skips repainting otherwise
    health: str = ""  # the Health card (lowvram_r1.ui.health)


def step_filter(step: float | None) -> int | None:
    """The Live tab's step box as a step: a value that is not a finite number within 64 bits (inf, nan, 1e300)
    means no filter, never an error on each refresh."""
    if step is None or isinstance(step, bool) or not isinstance(step, int | float) or not math.isfinite(step):
        return None
    return int(step) if abs(step) < 2**63 else None


def default_max_runs(gpu: Gpu | None) -> int:
    """Runs the panel starts at once unless told otherwise: one per GPU, one on a CPU-only machine (two trainers on
    one card or on two shared cores only make both slow or out of memory)."""
    return gpu.count if gpu else 1


class Panel:
    def __init__(
        self, runs_root: Path, configs_root: Path, cwd: Path | None = None, max_runs: int | None = None
    ) -> None:
        self.runs_root = runs_root
        self.configs_root = configs_root
        self.gpu = detect_gpu()  # once: the card does not change while the panel runs
        self.launcher = Launcher(runs_root, cwd, max_runs or default_max_runs(self.gpu))
        self._caches: dict[str, RunCache] = {}
        self._frames: dict[str, tuple[int, dict[str, pd.DataFrame]]] = {}  # run -> (cache version, plot frames)
        self._health: dict[str, RunHealth] = {}  # run -> its findings, recomputed when records arrive
        self._lock = threading.Lock()

    def run_path(self, name: str) -> Path:
        """``runs/<name>``, checked: a safe name, a real folder (never a symlink) directly under the runs folder."""
        path = self.runs_root / check_run_name(name)
        self.launcher.check_run_dir(path)
        return path

    def cache(self, name: str) -> RunCache:
        """The run's cache (created on first use); the name is checked, so no path leaves the runs folder."""
        self.run_path(name)
        with self._lock:
            if name not in self._caches:
                self._caches[name] = RunCache(self.runs_root / name)
            return self._caches[name]

    def run_names(self) -> list[str]:
        return [p.name for p in self.launcher.run_dirs()]

    def runs_table(self) -> pd.DataFrame:
        """Every run: status, step, reward, accuracy (metrics read incrementally; completions not needed here)."""
        self.launcher.keep_stop_requests()
        rows = []
        for path in self.launcher.run_dirs():
            cache = self.cache(path.name)
            cache.refresh(completions=False)
            rows.append(views.run_row(path.name, self.launcher.state(path), cache.run.status(), cache.metrics))
        return pd.DataFrame(rows, columns=views.RUN_COLUMNS)

    # -- live view -----------------------------------------------------------------------------------------------
    def live(
        self,
        name: str,
        step: float | None = None,
        correct: str = "all",
        reward_min: float | None = None,
        reward_max: float | None = None,
        limit: int = 24,
        order: str = "newest",
        smoothing: float = 0.0,
    ) -> LiveView:
        """What the Live tab paints; ``order``: one of :data:`lowvram_r1.ui.health.ORDERS` (grouped by prompt,
        longest first, ...); ``smoothing``: the curves' exponential moving average weight (0: raw)."""
        cache = self.cache(name)
        step = step_filter(step)
        cache.refresh()
        status = cache.run.status()
        state = self.launcher.state(cache.run.path)
        line = views.status_line(name, state, status, cache.metrics)
        if state in ("starting", "failed", "died") and not cache.metrics:
            tail = log_tail(cache.run.path, 6)
            line += f"\n\n```\n{tail}\n```" if tail else ""
        version, plots = self._frames.get(name, (-1, {}))
        if version != cache.version:  # plots are rebuilt only when records arrived (at most 1500 points a series)
            plots = {plot: frame(plot_rows(cache, plot), "series") for plot in PLOTS}
            self._frames[name] = (cache.version, plots)
        if order == "newest":
            cards = views.completion_cards(cache.completions(step, correct, reward_min, reward_max, limit))
        else:  # the step's whole batch, then ordered or grouped
            records = cache.completions(step, correct, reward_min, reward_max, health.STEP_RECORDS)
            ordered = health.order_records(records, order, limit if order != "grouped by prompt" else len(records))
            cards = health.grouped_cards(ordered) if order == "grouped by prompt" else views.completion_cards(ordered)
        findings = self.findings(name)
        titles = {
            p: PLOT_TITLES[p] if len(plots[p]) else EMPTY_TITLES.get(p, f"{PLOT_TITLES[p]} (no data yet)")
            for p in PLOTS
        }
        return LiveView(
            titles=titles,
            status=line,
            evaluation=views.eval_summary(cache.eval_result()),
            plots={p: health.smooth(f, smoothing) for p, f in plots.items()} if smoothing else plots,
            cards=cards,
            steps=cache.steps(),
            key=(name, cache.version, step, correct, reward_min, reward_max, state, order, smoothing),
            health=health.health_card(findings, cache.steps()),
        )

    def findings(self, name: str) -> list[Any]:
        """The run's health findings, worst first (computed on the records the live view already read)."""
        cache = self.cache(name)
        with self._lock:
            if self._health.get(name) is None or self._health[name].cache is not cache:
                self._health[name] = RunHealth(cache)
            monitor = self._health[name]
        return monitor.findings()

    def evidence(self, name: str, finding_id: str) -> dict[str, Any] | None:
        """The completion filters that show one finding's evidence (None when the run no longer has it)."""
        finding = next((f for f in self.findings(name) if f.id == finding_id), None)
        return health.evidence_filters(finding) if finding else None

    def compare(self, names: list[str], metric: str) -> pd.DataFrame:
        """One metric of several runs, long format (step, value, run) for an overlaid line plot."""
        key = COMPARE_METRICS.get(metric, metric)
        rows = []
        for name in names or []:
            cache = self.cache(name)
            cache.refresh(completions=False)
            rows.extend((step, value, name) for step, value in cache.metric_rows(key))
        return frame(rows, "run")

    # -- launch and controls -------------------------------------------------------------------------------------
    def plan_launch(self, run_name: str, recipe: str | None, values: dict[str, Any]) -> Launch:
        return build_launch(LaunchRequest(run_name, recipe, values), self.runs_root, self.configs_root)

    def memory_plan(self, recipe: str | None, values: dict[str, Any]) -> str:
        """The memory plan of the config the form describes (whatever the run name), or why there is none."""
        try:
            plan, _ = form_config(recipe, values, self.configs_root)
        except ValueError as error:
            return f"**Memory plan:** fix the form first — {error}"
        return plan_markdown(plan, self.gpu)

    def start(self, run_name: str, recipe: str | None, values: dict[str, Any]) -> Launch:
        launch = self.plan_launch(run_name, recipe, values)
        self.launcher.start(launch)
        return launch

    def stop(self, name: str) -> str:
        return self.launcher.stop(self.cache(name).run.path)

    def resume(self, name: str) -> str:
        launch = self.launcher.resume(self.cache(name).run.path)
        return f"resuming {name}: `{launch.display}`"

    def delete(self, name: str) -> str:
        path = self.cache(name).run.path
        self.launcher.delete(path)
        with self._lock:
            self._caches.pop(name, None)
            self._frames.pop(name, None)
            self._health.pop(name, None)
        return f"deleted {path}"

    def log(self, name: str) -> str:
        return log_tail(self.run_path(name), 40)

    def tryable_runs(self) -> list[str]:
        """Runs with a final adapter or a complete checkpoint."""
        return [
            p.name
            for p in self.launcher.run_dirs()
            if (p / "adapter" / "adapter_config.json").is_file() or RunDir(p).last_checkpoint() is not None
        ]
