"""Run health's rules about the rewards' errors, speed and memory, and :data:`RULES`, every rule in the order the
findings are computed (:mod:`lowvram_r1.runs.health` sorts them by severity). Thresholds: named constants, each
with where it comes from; docs/health.md is the user's side.
"""

from __future__ import annotations

from typing import Any

from lowvram_r1.runs.findings import Finding, RunFacts
from lowvram_r1.runs.health_rules import (
    entropy_collapse,
    format_not_learned,
    no_signal,
    pct,
    reward_hacking,
    truncated,
)
from lowvram_r1.runs.reader import finite

# reward_errors: any missing reward (None, or an error counted by the task's reward wrapper) is reported; above
# REWARD_ERRORS_CRITICAL of the completions the total reward is mostly made up (TRL sums the others, None as 0).
REWARD_ERRORS_CRITICAL = 0.1

# slow_rollouts: generation_time / step_time over the window. Above 70% a rollout engine 10x faster (vLLM against
# transformers' generate) cuts the step by 2.7x or more (Amdahl: 1 / (0.3 + 0.7 / 10)); the CPU demo measures 37-53%.
# GPU runs only (the recorder writes memory/device_total_gb on CUDA): on a CPU, vLLM is no faster than generate
# (measured 0.68x, docs/vllm.md), so the advice would be wrong there, and a CPU's share depends on the machine.
SLOW_ROLLOUT_SHARE = 0.7
SLOW_ROLLOUT_MIN_STEPS = 3

# memory_headroom (GPU runs only: the recorder writes memory/* on CUDA): the step's peak against the card. Above
# 93% a longer batch OOMs (allocator fragmentation and vLLM's KV cache take the last 5-7%, PyTorch's CUDA notes);
# under 50% the card could hold about twice the rollout tokens per step.
HEADROOM_TIGHT = 0.93
HEADROOM_ROOMY = 0.5


def reward_errors(facts: RunFacts) -> Finding | None:
    counted: dict[str, float] = {}
    for record in facts.train:
        for key, value in record.items():
            if key.startswith("rewards/") and key.endswith("/errors") and finite(value) and value:
                counted[key.split("/")[1]] = counted.get(key.split("/")[1], 0) + value
    index = facts.cache.index
    missing = sum(index.missing)
    total = max(int(sum(counted.values())), missing)
    if not total:
        return None
    first = next((i for i, m in enumerate(index.missing) if m), None)
    example: dict[str, Any] = {}
    if first is not None:
        record = (facts.cache.records_at([first]) or [{}])[0]
        names = [n for n, v in (record.get("rewards") or {}).items() if v is None]
        example = {"step": record.get("step"), "rewards": names, "completion": str(record.get("completion", ""))[:200]}
    share = total / max(1, len(index))
    who = ", ".join(sorted(counted)) or ", ".join(example.get("rewards", [])) or "a reward"
    return Finding(
        "reward_errors",
        "critical" if share >= REWARD_ERRORS_CRITICAL else "warning",
        {
            "summary": f"{who} returned None or raised on {total} of {len(index)} completions ({pct(share)})",
            "figures": {
                "errors": total,
                "completions": len(index),
                **{f"{n}_errors": int(c) for n, c in counted.items()},
            },
            "steps": [facts.train[0]["step"], facts.train[-1]["step"]] if facts.train else [],
            "plot": "reward",
            "completions": {"step": example.get("step"), "order": "latest"},
            "example": example,
        },
        f"Fix {who} so it returns a number for every completion (score the example with lowvram-r1 score --task "
        "... --completion ...); the total counts a missing reward as 0.",
    )


def slow_rollouts(facts: RunFacts) -> Finding | None:
    if not any(finite(r.get("memory/device_total_gb")) for r in facts.train):
        return None
    steps = facts.train[-10:]
    timed = [r for r in steps if finite(r.get("generation_time")) and finite(r.get("step_time")) and r["step_time"]]
    if len(timed) < SLOW_ROLLOUT_MIN_STEPS:
        return None
    generating, total = sum(r["generation_time"] for r in timed), sum(r["step_time"] for r in timed)
    share = generating / total
    if share < SLOW_ROLLOUT_SHARE:
        return None
    vllm = bool(facts.setting("generation.use_vllm", False))
    limit = facts.setting("generation.max_completion_length")
    return Finding(
        "slow_rollouts",
        "warning",
        {
            "summary": f"generating completions takes {pct(share)} of each step "
            f"({generating / len(timed):.1f} s of {total / len(timed):.1f} s)",
            "figures": {
                "generation_share": round(share, 3),
                "generation_time": round(generating / len(timed), 3),
                "step_time": round(total / len(timed), 3),
            },
            "steps": [timed[0]["step"], timed[-1]["step"]],
            "plot": "completion_length",
            "completions": {"step": timed[-1]["step"], "order": "longest"},
        },
        (
            "Raise --vllm-gpu-memory-utilization for a larger KV cache, or shorten --max-completion-length"
            if vllm
            else "Generate with vLLM (--use-vllm, on a GPU), or shorten --max-completion-length"
        )
        + (f" (now {limit})." if isinstance(limit, int) else "."),
    )


def memory_headroom(facts: RunFacts) -> Finding | None:
    measured = [r for r in facts.train if finite(r.get("memory/device_total_gb")) and r["memory/device_total_gb"]]
    if not measured:
        return None  # not a GPU run (the recorder writes memory/* only on CUDA)
    peak_record = max(measured, key=_used)
    total = float(peak_record["memory/device_total_gb"])
    share = _used(peak_record) / total
    if HEADROOM_ROOMY < share < HEADROOM_TIGHT:
        return None
    figures: dict[str, Any] = {
        "peak_gb": round(_used(peak_record), 2),
        "card_gb": round(total, 2),
        "share": round(share, 3),
    }
    planned = _planned_gb(facts, total)
    if planned is not None:
        figures["planned_gb"] = round(planned, 2)
    generations = facts.setting("training.num_generations")
    evidence = {
        "figures": figures,
        "steps": [measured[0]["step"], measured[-1]["step"]],
        "plot": "completion_length",
        "completions": {"step": peak_record["step"], "order": "longest"},
    }
    if share >= HEADROOM_TIGHT:
        evidence["summary"] = (
            f"the step peaked at {figures['peak_gb']} GB of the card's {figures['card_gb']} GB ({pct(share)}): "
            "the next longer batch will run out of memory"
        )
        return Finding(
            "memory_headroom",
            "critical" if share >= 0.98 else "warning",
            evidence,
            "Lower --max-completion-length or --num-generations, or offload checkpoints with "
            "--gradient-checkpointing offload (lowvram-r1 plan --auto-fit finds a config that fits).",
        )
    evidence["summary"] = (
        f"the step peaked at {figures['peak_gb']} GB of the card's {figures['card_gb']} GB ({pct(share)}): "
        "room for more generations"
    )
    return Finding(
        "memory_headroom",
        "info",
        evidence,
        "Raise --num-generations"
        + (f" (now {generations})" if generations else "")
        + " or --batch-size: more completions per step give more learning signal.",
    )


def _used(record: dict[str, Any]) -> float:
    """The card's use at the step's peak: the trainer's peak plus what the rest (vLLM's pool, other processes) held
    when the line was written; without the trainer's figures, the card's use then."""
    peak, now, card = (record.get(f"memory/{k}_gb") for k in ("peak_reserved", "reserved", "device_used"))
    if finite(peak) and finite(now) and finite(card):
        return peak + max(0.0, card - now)
    return max((float(v) for v in (peak, card) if finite(v)), default=0.0)


def _planned_gb(facts: RunFacts, card_gb: float) -> float | None:
    """The memory planner's peak for the run's config (None when the model is outside its table)."""
    from lowvram_r1 import config
    from lowvram_r1.memory.planner import plan

    try:
        return plan(config.from_dict(facts.settings), card_gb).total_gb
    except (ValueError, TypeError, KeyError):
        return None


RULES = (
    truncated,
    no_signal,
    format_not_learned,
    entropy_collapse,
    reward_hacking,
    reward_errors,
    slow_rollouts,
    memory_headroom,
)
