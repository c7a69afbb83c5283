"""Memory planner: the peak memory of one GRPO step, component by component, before anything loads.

    from lowvram_r1 import config
    from lowvram_r1.memory import planner
    p = planner.plan(resolve(config.load("gsm8k/8gb")), gpu_memory_gb=8)   # a run_plan.RunPlan, or a bare config
    print(p.render())                       # the table `lowvram-r1 plan` prints; p.fits, p.total_gb, p.to_dict()
    cfg = fit.shrink_to_fit(cfg, 8)             # smaller batch / group / completions / rank until it fits (fit.py)

One model of memory for every case, built from the architecture (``models.shapes``) and the libraries' real
behaviour (sources read in transformers 5.17, peft 0.21, trl 1.15, bitsandbytes 0.50):
- weights: NF4 stores 0.5 byte per decoder-linear weight plus its quantisation constants (an 8-bit absmax per
  64-weight block and an fp32 one per 256 blocks with double quantisation); embeddings, norms and lm_head stay
  unquantised, and peft's ``prepare_model_for_kbit_training`` (the ``hf`` backend) upcasts them to fp32.
- LoRA adapters are fp32 (peft's ``autocast_adapter_dtype``), with fp32 gradients and AdamW's two moments.
- activations: what autograd saves per token and layer (``components.layer_bytes``; checked with saved-tensor hooks and
  against measured peaks in tests/memory/test_planner_measured.py); checkpointing keeps one hidden state per layer
  (on the GPU, or in CPU RAM when offloaded: ``offload``, or Unsloth's default; a ``host`` row outside the GPU peak)
  plus one layer recomputed in backward.
- log-probs: TRL 1.15's fused LM head never builds the [tokens, vocab] logits on a GPU (4096-token x 32768-vocab
  tiles); the CPU stand-in (``models/cpu_logprob.py``) and older TRL build them in full.
- rollouts: transformers ``generate`` holds a KV cache for the whole generation batch (not at the same time as
  the backward); colocated vLLM reserves ``vllm_gpu_memory_utilization`` of the GPU for its own weights (none with
  Unsloth, which shares them) and KV cache, for the whole run.
- beyond the tensors (``memory.overheads``): the optimizer step's temporaries, 4-bit dequantisation buffers, on CPU the
  runtime and glibc's heap, and a named safety margin for what no term models; on CUDA two allowances not yet
  measured by this project (the CUDA runtime and vLLM's own buffers).
The peak is the resident part plus the largest of the phases that do not overlap (forward/backward, the end of the
backward, the optimizer step, generation), plus the margin. ``bench/memory_sweep.py`` measures it on CPU.
GB here means GiB (2**30 bytes), as torch and nvidia-smi report GPU memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lowvram_r1.config import RunConfig
from lowvram_r1.memory import components, overheads
from lowvram_r1.memory.components import VLLM_RUNTIME_BYTES, Component, GiB
from lowvram_r1.run_plan import RunPlan, plan_of

PHASES = ("train", "backward end", "optimizer step", "rollout")  # transient phases: never two at once


@dataclass(frozen=True)
class MemoryPlan:
    """The planned peak: resident parts, plus the largest transient phase, plus the safety margin."""

    model: str
    device: str
    components: tuple[Component, ...]
    budget_gb: float | None = None
    assumptions: tuple[str, ...] = ()

    def phase_bytes(self, phase: str) -> int:
        return sum(c.bytes for c in self.components if c.phase == phase)

    def peak_phase(self, phases: tuple[str, ...] = PHASES) -> str:
        return max(phases, key=self.phase_bytes)

    def peak_bytes(self, phases: tuple[str, ...] = PHASES) -> int:
        """Resident + the largest of ``phases`` + margin; ``PHASES[:3]`` is one training step without rollouts."""
        return self.phase_bytes("always") + self.phase_bytes(self.peak_phase(phases)) + self.phase_bytes("margin")

    @property
    def total_bytes(self) -> int:
        return self.peak_bytes()

    @property
    def total_gb(self) -> float:
        return self.total_bytes / GiB

    @property
    def fits(self) -> bool | None:
        return None if self.budget_gb is None else self.total_gb <= self.budget_gb

    def margins(self) -> str:
        """What the plan holds beyond what it models: the safety margin and, on CUDA, the unmeasured allowances."""
        text = f"safety margin {self.phase_bytes('margin') / GiB:.2f} GB ({overheads.SAFETY_MARGIN:.0%} of the rest)"
        allowances = [f"CUDA runtime {c.bytes / GiB:.2f} GB" for c in self.components if c.name == "CUDA runtime"]
        if any(c.name.startswith("vLLM") for c in self.components):
            allowances.append(f"vLLM runtime {VLLM_RUNTIME_BYTES / GiB:.2f} GB (inside its share)")
        if allowances:
            text += "; allowances not measured here yet: " + ", ".join(allowances)
        return text

    def render(self) -> str:
        where = "GPU" if self.device == "cuda" else "CPU RAM"
        lines = [f"Planned peak {where} memory of one GRPO step: {self.model}", ""]
        lines += [f"  {'component':<38} {'phase':<14} {'GB':>8}  note"]
        for c in self.components:
            lines.append(f"  {c.name:<38} {c.phase:<14} {c.bytes / GiB:>8.2f}  {c.note}")
        peak = f"peak (resident + {self.peak_phase()} + margin)"
        lines += ["", f"  {peak:<53} {self.total_gb:>8.2f}", f"  margins: {self.margins()}"]
        lines += [f"  assumes: {a}" for a in self.assumptions]
        if self.budget_gb is not None:
            verdict = "fits" if self.fits else "does NOT fit"
            lines.append(
                f"\nVerdict: {verdict} in {self.budget_gb:g} GB ({self.total_gb:.2f} GB planned, "
                f"{self.budget_gb - self.total_gb:+.2f} GB to spare)"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "device": self.device,
            "total_gb": round(self.total_gb, 3),
            "budget_gb": self.budget_gb,
            "fits": self.fits,
            "assumptions": list(self.assumptions),
            "peak_phase": self.peak_phase(),
            "safety_margin_gb": round(self.phase_bytes("margin") / GiB, 4),
            "components": [
                {"name": c.name, "gb": round(c.bytes / GiB, 4), "bytes": c.bytes, "phase": c.phase, "note": c.note}
                for c in self.components
            ],
        }


def plan(
    run: RunPlan | RunConfig,
    gpu_memory_gb: float | None = None,
    *,
    device: str = "cuda",
    full_finetune: bool = False,
    logprobs: str | None = None,
) -> MemoryPlan:
    """Peak memory of one GRPO step of the run on ``device`` ("cuda", or "cpu" for the CPU-resident parts): its
    :class:`~lowvram_r1.run_plan.RunPlan`, or a bare config (the benches', the GPU kit's), resolved here.

    ``full_finetune`` plans training every weight instead of LoRA (what ``bench/memory.py`` compares with);
    ``logprobs`` forces "full" or "chunked" log-prob memory (default: chunked on CUDA, full on CPU).
    """
    return memory_plan(plan_of(run), gpu_memory_gb, device=device, full_finetune=full_finetune, logprobs=logprobs)


def memory_plan(
    run: RunPlan,
    gpu_memory_gb: float | None = None,
    *,
    cfg: RunConfig | None = None,
    device: str = "cuda",
    full_finetune: bool = False,
    logprobs: str | None = None,
) -> MemoryPlan:
    """:func:`plan` of a resolved run; ``cfg``: one of its candidate configs (auto-fit's: the same task, other
    knobs), planned with the run's environment tokens."""
    cfg = cfg or run.cfg
    # multi-turn tasks: retrieved passages lengthen every completion
    step = components.Step.of(cfg, device, full_finetune, run.budget.inserted, run.architecture())
    rollouts, notes = components.generation(step, gpu_memory_gb)
    rows = [
        *components.weights(step),
        *components.trainable_state(step),
        *components.runtime(step),
        *components.training(step, logprobs),
        components.optimizer_step(step),
        *rollouts,
    ]
    modelled = MemoryPlan(cfg.model.name, device, tuple(rows)).total_bytes
    vllm = sum(c.bytes for c in rows if c.name.startswith("vLLM"))
    rows.append(
        Component(
            "safety margin",
            overheads.margin_bytes(modelled - vllm),
            "margin",
            f"{overheads.SAFETY_MARGIN:.0%} for what no term models (outside vLLM's share)",
        )
    )
    g = cfg.generation
    notes.append(
        f"{'bf16/fp16' if step.act == 2 else 'fp32'} activations, prompts padded to {g.max_prompt_length} "
        f"and completions run to {g.max_completion_length} tokens (the worst case)"
    )
    if cfg.training.beta > 0:
        notes.append("beta > 0: the reference log-probs come from the base model with the adapter off (no copy)")
    return MemoryPlan(cfg.model.name, device, tuple(rows), gpu_memory_gb, tuple(notes))


def parse_gb(text: str | float) -> float:
    """``8``, ``"8GB"``, ``"7.5 GiB"``, ``"24g"`` -> GB as a float; raises ValueError saying what is expected."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        cleaned = text.strip().lower().replace(" ", "")
        for suffix in ("gib", "gb", "g"):
            cleaned = cleaned.removesuffix(suffix)
        try:
            value = float(cleaned)
        except ValueError:
            raise ValueError(f"GPU memory {text!r} is not a size: write it like 8GB, 7.5 or 24GiB") from None
    if value <= 0:
        raise ValueError(f"GPU memory must be positive, got {text!r}")
    return value
