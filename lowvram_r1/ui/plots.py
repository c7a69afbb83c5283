"""What the live view and the compare view draw: the plots, their titles, and the rows each plot takes from a run's
metrics (read by :class:`lowvram_r1.runs.reader.RunCache`).

    rows = plot_rows(cache, "reward")     # (step, value, series) rows, thinned to 1,500 points per series
"""

from __future__ import annotations

import math

from lowvram_r1.rewards.monitor import REFLECTION_REWARD
from lowvram_r1.runs.reader import RunCache, finite
from lowvram_r1.runs.series import HELD_OUT, PLOTS, SEARCH_MONITORS, plot_series  # noqa: F401  (PLOTS, SEARCH_MONITORS: re-exported)

PLOT_TITLES = {
    "reward": "Reward: total and per function",
    "reward_std": "Reward std within groups",
    "completion_length": "Completion length (tokens)",
    "kl": "KL to the reference model",
    "entropy": "Entropy (mean per token)",
    "accuracy": "Accuracy",
    "reflection": "Reflection-phrase rate ('wait'...)",
    "search": "Search: calls per completion, hit rate (search tasks)",
}
COMPARE_METRICS = {
    "reward": "reward",
    "train accuracy": "train_accuracy",
    "held-out accuracy": "eval:accuracy",
    "reward std": "reward_std",
    "completion length": "completions/mean_length",
    "KL": "kl",
    "reflection rate": f"rewards/{REFLECTION_REWARD}/mean",
    "searches per completion": "rewards/search_count_reward/mean",
    "retrieval hit rate": "rewards/retrieval_hit_reward/mean",
    "entropy": "entropy",
    "loss": "loss",
}


def plot_rows(cache: RunCache, plot: str, max_points: int = 1500) -> list[tuple[int, float, str]]:
    """(step, value, series) rows for one of :data:`PLOTS`, thinned to ``max_points`` per series."""
    rows: list[tuple[int, float, str]] = []
    train, evals = cache.split_metrics()
    stride = max(1, math.ceil(len(train) / max_points))
    picked = train[::stride] if stride == 1 or not train else [*train[::stride][:-1], train[-1]]
    for key, series in plot_series(plot, picked):
        rows.extend((int(r["step"]), float(r[key]), series) for r in picked if finite(r.get(key)))
    if plot == "accuracy":
        if not rows:
            return []  # Gradio's plot keeps its first frame's series: wait until both can be in it
        key, label = HELD_OUT
        rows.extend((int(r["step"]), float(r[key]), label) for r in evals if finite(r.get(key)))
    return rows
