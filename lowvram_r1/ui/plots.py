"""What the live view and the compare view draw: the plots, their titles, and the rows each plot takes from a run's
metrics (read by :class:`lowvram_r1.runs.reader.RunCache`).

    rows = plot_rows(cache, "reward")     # (step, value, series) rows, thinned to 1,500 points per series
"""

from __future__ import annotations

import math
from typing import Any

from lowvram_r1.rewards.monitor import CHECK_REWARD, REFLECTION_REWARD
from lowvram_r1.runs.reader import RunCache, finite

PLOTS = ("reward", "reward_std", "completion_length", "kl", "entropy", "accuracy", "reflection", "search")
# the search tasks' weight-0 monitors (lowvram_r1.rewards.search), drawn together on the "search" plot
SEARCH_MONITORS = {
    "search_count_reward": "searches per completion",
    "retrieval_hit_reward": "retrieval hit rate",
    "answer_in_retrieved_reward": "answer in retrieved text",
}
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
    for key, series in _series(plot, picked):
        rows.extend((int(r["step"]), float(r[key]), series) for r in picked if finite(r.get(key)))
    if plot == "accuracy":
        if not rows:
            return []  # Gradio's plot keeps its first frame's series: wait until both can be in it
        rows.extend((int(r["step"]), float(r["accuracy"]), "held-out") for r in evals if finite(r.get("accuracy")))
    return rows


def _series(plot: str, train: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(metric key, series label) pairs a plot draws, from the keys present in the records."""
    keys: dict[str, None] = {}
    for record in train[:1] + train[-1:]:
        keys.update(dict.fromkeys(record))
    if plot == "reward":
        names = [k.split("/")[1] for k in keys if k.startswith("rewards/") and k.endswith("/mean")]
        # the monitors (correctness, reflection) are weight-0 rewards with plots of their own
        monitors = (CHECK_REWARD, REFLECTION_REWARD, *SEARCH_MONITORS)
        # a reward that raised (rewards.weighted.GuardedReward): its error count, drawn once there is one
        failing = [k.split("/")[1] for k in keys if k.startswith("rewards/") and k.endswith("/errors")]
        failing = [n for n in failing if any(r.get(f"rewards/{n}/errors") for r in train)]
        return [
            ("reward", "total"),
            *((f"rewards/{n}/mean", n) for n in names if n not in monitors),
            *((f"rewards/{n}/errors", f"{n}: errors") for n in failing),
        ]
    if plot == "search":
        return [(f"rewards/{n}/mean", label) for n, label in SEARCH_MONITORS.items() if f"rewards/{n}/mean" in keys]
    single = {
        "reward_std": ("reward_std", "reward std"),
        "completion_length": ("completions/mean_length", "mean length"),
        "kl": ("kl", "KL"),
        "entropy": ("entropy", "mean token entropy"),
        "accuracy": ("train_accuracy", "training batch"),
        "reflection": (f"rewards/{REFLECTION_REWARD}/mean", "reflection rate"),
    }
    return [single[plot]]
