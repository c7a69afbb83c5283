"""The Launch tab's memory plan: ``planner.plan`` for the form's run (its ``run_plan.RunPlan``) against the GPU this
machine has.

The GPU is found without torch (the panel never imports it): ``nvidia-smi`` when it is on the PATH, else none
(:func:`lowvram_r1.models.hardware.gpus_without_context`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lowvram_r1.config import RunConfig
from lowvram_r1.memory import planner
from lowvram_r1.models.hardware import gpus_without_context
from lowvram_r1.run_plan import RunPlan


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gb: float  # GiB, as nvidia-smi and torch count
    count: int = 1  # GPUs nvidia-smi lists (the panel runs one trainer per GPU by default)


def detect_gpu() -> Gpu | None:
    """The first NVIDIA GPU as nvidia-smi reports it (and how many there are); None without nvidia-smi or a GPU."""
    gpus = gpus_without_context()
    return Gpu(gpus[0][0], gpus[0][1], len(gpus)) if gpus else None


def plan_markdown(run: RunPlan | RunConfig, gpu: Gpu | None) -> str:
    """A verdict line (fits / does not fit the detected GPU, or no GPU) above the planner's component table."""
    try:
        plan = planner.plan(run, gpu.memory_gb if gpu else None)
    except ValueError as error:
        return f"**Memory plan:** not available — {error}"
    if gpu is None:
        verdict = (
            f"**Memory plan:** {plan.total_gb:.2f} GB of GPU memory at peak. **No GPU detected** "
            "(no nvidia-smi): on this machine the run trains on the CPU."
        )
    elif plan.fits:
        verdict = f"**Memory plan: fits** your {gpu.name} — {plan.total_gb:.2f} GB planned of {gpu.memory_gb:.1f} GB."
    else:
        verdict = (
            f"**Memory plan: does NOT fit** your {gpu.name} — {plan.total_gb:.2f} GB planned of "
            f"{gpu.memory_gb:.1f} GB. Lower completions per step, completion length or LoRA rank, or use "
            "4-bit loading (`lowvram-r1 plan --auto-fit` finds a config that fits)."
        )
    return f"{verdict}\n\n```\n{plan.render()}\n```"
