"""The metric series each plot of a run draws: the one definition that the panel's live view (``ui/plots.py``) and
the notebook's figure (``notebook.RunView.figure``) both read, so the two show the same lines under the same names.

    plot_series("reward", train_records)   # [("reward", "total"), ("rewards/format_reward/mean", "format_reward"), ...]
    HELD_OUT                               # ("accuracy", "held-out"): the held-out evals' series on the accuracy plot
"""

from __future__ import annotations

from typing import Any

from lowvram_r1.rewards.monitor import CHECK_REWARD, REFLECTION_REWARD

PLOTS = ("reward", "reward_std", "completion_length", "kl", "entropy", "accuracy", "reflection", "search")
# the search tasks' weight-0 monitors (lowvram_r1.rewards.search), drawn together on the "search" plot
SEARCH_MONITORS = {
    "search_count_reward": "searches per completion",
    "retrieval_hit_reward": "retrieval hit rate",
    "answer_in_retrieved_reward": "answer in retrieved text",
}
HELD_OUT = ("accuracy", "held-out")  # (key in the eval records, label) drawn beside the training batch's accuracy


def plot_series(plot: str, train: list[dict[str, Any]]) -> list[tuple[str, str]]:
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
