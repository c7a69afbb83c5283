"""The rules of run health (:mod:`lowvram_r1.runs.health`): one function per finding, each a pure function of the
run's records, and the thresholds they use. Here: what the rewards and the policy do; the rewards' errors, speed
and memory are in :mod:`lowvram_r1.runs.health_resources`, with the list of rules. docs/health.md is the user's side.

Every threshold is a named constant with where it comes from. A rule needs enough steps before it speaks (a
few noisy steps are not a trend), and each is quiet on a healthy run: the CPU demo's run has no finding.
"""

from __future__ import annotations

import math

from lowvram_r1.runs.findings import Finding, RunFacts

# Window of recent steps the level-type rules average over: per-step GRPO metrics come from a handful of prompts
# (4 on the CPU demo), so one step is noise; 10 steps is the smoothing TRL's own examples log at (logging_steps=10).
RECENT_STEPS = 10

# truncated: completions/clipped_ratio (TRL: share of completions that hit max_completion_length, so their answer
# was never written). The CPU demo measures 0-3%; DAPO (Yu et al. 2025, "overlong filtering") treats truncation as
# noise to mask out, so a quarter of the batch being cut is a run learning from noise; half of it is most of it.
TRUNCATED_SHARE = 0.25
TRUNCATED_CRITICAL = 0.5

# no_signal: TRL's frac_reward_zero_std, the share of groups whose rewards are all equal (advantage 0: nothing to
# learn from). The CPU demo measures 0-75% per step, about 30% on average; DAPO's dynamic sampling filters such
# groups because beyond most of the batch the gradient is mostly empty. Needs NO_SIGNAL_MIN_STEPS logged steps.
NO_SIGNAL_SHARE = 0.75
NO_SIGNAL_CRITICAL = 0.95
NO_SIGNAL_MIN_STEPS = 3

# format_not_learned: every format reward (a name with "format" or "tag" in it) stays at or under FORMAT_FLOOR (on
# the rewards' 0-1 scale) after FORMAT_MIN_STEPS steps. The tiny demo model writes its tags from step 1 (~97%);
# R1-Zero-style runs of 0.5-1.5B models learn them within tens of steps, so 10 steps near 0 means a prompt problem.
FORMAT_FLOOR = 0.1
FORMAT_MIN_STEPS = 10

# entropy_collapse: mean token entropy of the last window fell to ENTROPY_COLLAPSE_RATIO of the first window's
# while accuracy stopped rising (Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs": performance
# saturates once entropy is spent). The demo recipe notes entropy collapse past 300 steps at its learning rate.
ENTROPY_COLLAPSE_RATIO = 0.25
ENTROPY_MIN_STEPS = 20

# reward_hacking: the training reward rose by REWARD_RISE (rewards on a 0-1 scale) while accuracy (held-out when
# evaluated twice, else the training batch's check) gained at most ACCURACY_FLAT; or one reward rose while the
# check fell by ACCURACY_FALL. A learning run gains accuracy with its reward: the demo +15 points over 300 steps. A
# rise made of format rewards alone is not hacking (R1-Zero runs learn the format before the answers).
REWARD_RISE = 0.1
ACCURACY_FLAT = 0.01
ACCURACY_FALL = 0.05
HACKING_MIN_STEPS = 20


def mean_of(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _span(points: list[tuple[int, float]]) -> list[int]:
    return [points[0][0], points[-1][0]] if points else []


def _recent(facts: RunFacts, key: str) -> list[tuple[int, float]]:
    return facts.series(key, facts.train[-RECENT_STEPS:])


def _ends(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Mean of the first and of the last quarter (at least 3 points each)."""
    window = max(3, len(points) // 4)
    return mean_of([v for _, v in points[:window]]), mean_of([v for _, v in points[-window:]])


def pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def truncated(facts: RunFacts) -> Finding | None:
    points = _recent(facts, "completions/clipped_ratio")
    share = mean_of([v for _, v in points])
    if not points or share < TRUNCATED_SHARE:
        return None
    limit = facts.setting("generation.max_completion_length")
    generations = facts.setting("training.num_generations")
    worst = max(reversed(points), key=lambda p: p[1])[0]  # the latest of the worst steps
    raise_to = f" (now {limit}; try {2 * limit})" if isinstance(limit, int) else ""
    keep = f" (now {generations})" if isinstance(generations, int) else ""
    return Finding(
        "truncated",
        "critical" if share >= TRUNCATED_CRITICAL else "warning",
        {
            "summary": f"{pct(share)} of completions hit max_completion_length {limit or ''}".rstrip()
            + ": their answer was never written, so it scores 0",
            "figures": {"clipped_ratio": round(share, 3), "max_completion_length": limit},
            "steps": _span(points),
            "plot": "completion_length",
            "completions": {"step": worst, "order": "longest"},
        },
        f"Raise --max-completion-length{raise_to}; to keep memory, lower --num-generations{keep}.",
    )


def no_signal(facts: RunFacts) -> Finding | None:
    points = _recent(facts, "frac_reward_zero_std")
    share = mean_of([v for _, v in points])
    if len(points) < NO_SIGNAL_MIN_STEPS or share < NO_SIGNAL_SHARE:
        return None
    generations = facts.setting("training.num_generations")
    temperature = facts.setting("generation.temperature")
    return Finding(
        "no_signal",
        "critical" if share >= NO_SIGNAL_CRITICAL else "warning",
        {
            "summary": f"{pct(share)} of the groups have the same reward for every completion: their advantage "
            "is 0 and nothing is learned from them",
            "figures": {"frac_reward_zero_std": round(share, 3), "num_generations": generations},
            "steps": _span(points),
            "plot": "reward_std",
            "completions": {"step": points[-1][0], "order": "group"},
        },
        "Use easier data or a partial-credit reward, more --num-generations"
        + (f" (now {generations})" if generations else "")
        + ", or a higher --temperature"
        + (f" (now {temperature})" if temperature is not None else "")
        + ".",
    )


def _is_format(name: str) -> bool:
    """A reward that pays for the output's shape (format_reward, tag_count_reward, ...), not its correctness."""
    return "format" in name or "tag" in name


def format_not_learned(facts: RunFacts) -> Finding | None:
    names = sorted(
        k.split("/")[1]
        for k in facts.keys()
        if k.startswith("rewards/") and k.endswith("/mean") and _is_format(k.split("/")[1])
    )
    if not names or not facts.train or facts.train[-1]["step"] < FORMAT_MIN_STEPS:
        return None
    levels = {name: mean_of([v for _, v in _recent(facts, f"rewards/{name}/mean")]) for name in names}
    if not all(level <= FORMAT_FLOOR for level in levels.values()):
        return None
    points = _recent(facts, f"rewards/{names[0]}/mean")
    return Finding(
        "format_not_learned",
        "critical",
        {
            "summary": f"the format rewards stay near 0 after {facts.train[-1]['step']} steps ("
            + ", ".join(f"{n} {v:.2f}" for n, v in levels.items())
            + "): the model does not write the tags the other rewards read",
            "figures": {name: round(level, 3) for name, level in levels.items()},
            "steps": _span(points),
            "plot": "reward",
            "completions": {"step": points[-1][0] if points else None, "order": "latest"},
        },
        "Describe the tags in --system-prompt, start the answer with --assistant-prefill '<think>', or run a "
        "cold-start SFT first (lowvram-r1 sft).",
    )


def _accuracy_change(facts: RunFacts) -> tuple[str, float, float] | None:
    """(source, first, last) accuracy: held-out evaluations when there are two, else the training batches'."""
    held_out = facts.series("accuracy", facts.evals)
    if len(held_out) >= 2:
        return "held-out accuracy", held_out[0][1], held_out[-1][1]
    train = facts.series("train_accuracy")
    if len(train) >= HACKING_MIN_STEPS:
        return ("training accuracy", *_ends(train))
    return None


def entropy_collapse(facts: RunFacts) -> Finding | None:
    points = facts.series("entropy")
    if len(points) < ENTROPY_MIN_STEPS:
        return None
    first, last = _ends(points)
    accuracy = _accuracy_change(facts)
    if not first > 0 or last > ENTROPY_COLLAPSE_RATIO * first or accuracy is None:
        return None
    source, before, after = accuracy
    if after > before + ACCURACY_FLAT:
        return None
    lr = facts.setting("training.learning_rate")
    return Finding(
        "entropy_collapse",
        "warning",
        {
            "summary": f"entropy fell from {first:.3f} to {last:.3f} while {source} went {pct(before)} -> "
            f"{pct(after)}: the policy stopped exploring",
            "figures": {"entropy_first": round(first, 4), "entropy_last": round(last, 4), source: [before, after]},
            "steps": _span(points),
            "plot": "entropy",
            "completions": {"step": points[-1][0], "order": "group"},
        },
        "Lower --learning-rate"
        + (f" (now {lr:g})" if isinstance(lr, float) else "")
        + ", add a KL penalty with --beta 0.04, or stop earlier with --max-steps.",
    )


def reward_hacking(facts: RunFacts) -> Finding | None:
    points = facts.series("reward")
    accuracy = _accuracy_change(facts)
    if len(points) < HACKING_MIN_STEPS or accuracy is None:
        return None
    source, before, after = accuracy
    first, last = _ends(points)
    rises = {}  # each optimised reward's rise (the monitors, correctness and reflection, are not paid for)
    for key in sorted(k for k in facts.keys() if k.startswith("rewards/") and k.endswith("/mean")):
        if "check_reward" not in key and "reflection" not in key:
            low, high = _ends(facts.series(key))
            rises[key.split("/")[1]] = (low, high)
    rising = [name for name, (low, high) in rises.items() if high - low >= REWARD_RISE]
    # learning the format first, with accuracy still flat, is how R1-Zero runs start: not hacking
    format_only = bool(rising) and all(_is_format(name) for name in rising)
    summary = None
    if last - first >= REWARD_RISE and after - before <= ACCURACY_FLAT and not format_only:
        summary = (
            f"the training reward rose {first:.2f} -> {last:.2f} while {source} went {pct(before)} -> {pct(after)}"
        )
    else:
        check = facts.series("train_accuracy")
        check_first, check_last = _ends(check) if len(check) >= HACKING_MIN_STEPS else (math.nan, math.nan)
        for name in rising:
            low, high = rises[name]
            if check_first - check_last >= ACCURACY_FALL:
                summary = (
                    f"{name} rose {low:.2f} -> {high:.2f} while the check fell {pct(check_first)} -> {pct(check_last)}"
                )
                break
    if summary is None:
        return None
    return Finding(
        "reward_hacking",
        "critical" if before - after >= ACCURACY_FALL else "warning",
        {
            "summary": summary + ": the rewards pay for something other than correct answers",
            "figures": {"reward": [round(first, 3), round(last, 3)], source: [before, after]},
            "steps": _span(points),
            "plot": "accuracy",
            "completions": {"step": points[-1][0], "correct": "wrong", "reward_min": round(last, 3), "order": "reward"},
        },
        "Read the high-reward completions the check marks wrong, then fix the reward that pays for them (or lower "
        "its weight with --reward-weights).",
    )
