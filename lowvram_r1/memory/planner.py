"""Memory planner: the peak memory of one GRPO step, component by component, before anything loads.

    from lowvram_r1 import config
    from lowvram_r1.memory import planner
    p = planner.plan(config.load("gsm8k/8gb"), gpu_memory_gb=8)
    print(p.render())                       # the table `lowvram-r1 plan` prints; p.fits, p.total_gb, p.to_dict()
    cfg = fit.shrink_to_fit(cfg, 8)             # smaller batch / group / completions / rank until it fits (fit.py)

One model of memory for every case, built from the architecture (``memory.shapes``) and the libraries' real
behaviour (sources read in transformers 5.17, peft 0.21, trl 1.15, bitsandbytes 0.50):
- weights: NF4 stores 0.5 byte per decoder-linear weight plus its quantisation constants (an 8-bit absmax per
  64-weight block and an fp32 one per 256 blocks with double quantisation); embeddings, norms and lm_head stay
  unquantised, and peft's ``prepare_model_for_kbit_training`` (the ``hf`` backend) upcasts them to fp32.
- LoRA adapters are fp32 (peft's ``autocast_adapter_dtype``), with fp32 gradients and AdamW's two moments.
- activations: what autograd saves per token and layer (``_layer_bytes``; checked with saved-tensor hooks and
  against measured peaks in tests/test_vram_measured.py); checkpointing keeps one hidden state per layer (on the
  GPU, or in CPU RAM when offloaded: ``offload``, or Unsloth's default; a ``host`` row outside the GPU peak) plus
  one layer recomputed in backward.
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
from lowvram_r1.memory import overheads
from lowvram_r1.memory.shapes import Architecture, architecture

GiB = 2**30
# Allowances on CUDA, not measured by this project yet (bench/gpu_check.py reports them against the GPU when it runs):
# the CUDA context, cuBLAS workspaces and caching-allocator rounding, the middle of the 0.5-1 GB they usually take
CUDA_RUNTIME_BYTES = int(0.75 * GiB)
# vLLM's own activation buffers and sampler inside its reservation: its profile run at the 4096-token batch our
# engine sets (rollout/vllm_engine.py: max_num_batched_tokens) costs ~0.1-0.2 GB for 1.5B-7B shapes, plus logits
VLLM_RUNTIME_BYTES = int(0.5 * GiB)
PHASES = ("train", "backward end", "optimizer step", "rollout")  # transient phases: never two at once
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit weight + double-quantised absmax constants
LOGPROB_TILE = (4096, 32768)  # trl.kernels.chunked_logprob: TOKEN_CHUNK_SIZE x _CHUNKED_LOGPROB_CHUNK_SIZE
CHECKPOINT_MODES = ("none", "standard", "offloaded")
UNSLOTH_OFFLOAD_FROM = 512  # sequence length from which Unsloth offloads (apply_unsloth_gradient_checkpointing)


@dataclass(frozen=True)
class Component:
    name: str
    bytes: int
    # "always" (resident all step), one of PHASES, "host" (CPU RAM, not GPU), or "margin" (the safety margin)
    phase: str
    note: str = ""


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


def checkpoint_mode(cfg: RunConfig, device: str = "cuda") -> str:
    """``offloaded``: each layer's input waits in CPU RAM (``gradient_checkpointing: offload`` on any backend, and
    ``true`` on Unsloth, whose default is its offloaded mode). Unsloth (which ``auto`` may pick) checkpoints plainly
    below 512-token sequences; on the CPU nothing moves, so offloaded is standard there."""
    ckpt, backend = cfg.model.gradient_checkpointing, cfg.model.backend
    if not ckpt:
        return "none"
    short = cfg.generation.max_prompt_length + cfg.generation.max_completion_length < UNSLOTH_OFFLOAD_FROM
    offloaded = (ckpt == "offload" or backend == "unsloth") and not (short and backend != "hf")
    return "offloaded" if offloaded and device == "cuda" else "standard"


def offload_component(a: Architecture, cfg: RunConfig, hidden: int) -> Component:
    """The CPU RAM that offloaded checkpoints take (phase ``host``: not part of the GPU peak), and what crosses the
    bus: each layer's input (``hidden`` bytes per micro-batch) goes out in the forward and back in the backward."""
    held = a.layers * hidden
    saved = (a.layers - 2) * hidden  # against standard checkpointing: all but the input in use and its gradient
    per_step = 2 * held * cfg.training.gradient_accumulation_steps
    return Component(
        "offloaded checkpoints (CPU RAM)",
        held,
        "host",
        f"pinned, not in the GPU peak: saves {saved / GiB:.2f} GB of GPU, copies "
        f"{per_step / GiB:.2f} GB per optimizer step",
    )


def _layer_bytes(a: Architecture, act: int, lora_copy: int, targets: set[str], full: bool) -> int:
    """Bytes autograd saves per token for one decoder layer (SDPA / FlashAttention: no seq x seq scores).

    ``act``: activation dtype bytes. ``lora_copy``: bytes of the copy of its input each adapted linear saves when
    peft casts it to the adapter dtype (0 when the dtypes agree and the input is shared).
    """
    h, q, kv, i = a.hidden, a.q_dim, a.kv_dim, a.intermediate
    norms = a.norms_per_layer * 4 * h  # RMSNorm upcasts its input to fp32 and saves it
    qk_norm = 4 * (q + kv) if a.qk_norm else 0
    attention = act * (q + 2 * kv + q) + 4 * a.heads  # q, k, v, output, log-sum-exp
    mlp = 3 * act * i  # gate output (activation input), activation output, up output
    inputs = {"q_proj": h, "k_proj": h, "v_proj": h, "o_proj": q, "gate_proj": h, "up_proj": h, "down_proj": i}
    if full or not lora_copy:  # linears save their input, shared between q/k/v and between gate/up
        saved = act * (2 * h + i)  # normed inputs and the gate*up product (the attention output is counted)
    else:
        saved = lora_copy * sum(size for name, size in inputs.items() if name in targets)
    return norms + qk_norm + attention + mlp + saved


def _nf4_bytes(a: Architecture, dense_bytes: int) -> int:
    """Decoder linears in NF4; embeddings, lm_head, norms and anything outside the decoder at ``dense_bytes``."""
    return int(a.linear_params * NF4_BYTES + (a.embedding_params + a.other_params + a.extra_params) * dense_bytes)


def plan(
    cfg: RunConfig,
    gpu_memory_gb: float | None = None,
    *,
    device: str = "cuda",
    full_finetune: bool = False,
    logprobs: str | None = None,
) -> MemoryPlan:
    """Peak memory of one GRPO step of ``cfg`` on ``device`` ("cuda", or "cpu" for the CPU-resident parts).

    ``full_finetune`` plans training every weight instead of LoRA (what ``bench/memory.py`` compares with);
    ``logprobs`` forces "full" or "chunked" log-prob memory (default: chunked on CUDA, full on CPU).
    """
    a = architecture(cfg.model.name)
    t, g, m = cfg.training, cfg.generation, cfg.model
    gpu = device == "cuda"
    w_bytes = {"float32": 4}.get(m.dtype, 2) if gpu else (2 if m.dtype in ("bfloat16", "float16") else 4)
    four_bit = (m.load_in_4bit or a.prequantized) and not full_finetune
    targets = (
        set(a.linear_shapes())
        if cfg.lora.target_modules == "all-linear"
        else {s.strip() for s in cfg.lora.target_modules.split(",")}
    )
    rows: list[Component] = []
    notes: list[str] = []

    if four_bit:
        dense = 4 if m.backend != "unsloth" else w_bytes  # peft upcasts non-quantised weights for k-bit training
        weights = _nf4_bytes(a, dense)
        rows.append(Component("base weights (nf4)", weights, "always", f"{a.params / 1e9:.2f}B params"))
    else:
        rows.append(
            Component(
                f"base weights ({8 * w_bytes}-bit)", a.params * w_bytes, "always", f"{a.params / 1e9:.2f}B params"
            )
        )
    trainable = a.params if full_finetune else a.lora_params(cfg.lora.r, cfg.lora.target_modules)
    grad_bytes = w_bytes if full_finetune else 4
    if not full_finetune:
        rows.append(
            Component("LoRA adapters (fp32)", trainable * 4, "always", f"r={cfg.lora.r}, {trainable / 1e6:.1f}M params")
        )
    rows.append(Component("gradients", trainable * grad_bytes, "always", "trainable parameters only"))
    eight_bit = t.optim.endswith("8bit")
    rows.append(
        Component(
            f"optimizer ({t.optim})",
            trainable * (2 if eight_bit else 8),
            "always",
            "two moments, " + ("8-bit" if eight_bit else "fp32"),
        )
    )
    if gpu:
        rows.append(
            Component("CUDA runtime", CUDA_RUNTIME_BYTES, "always", "context, workspaces, allocator: an allowance")
        )
    else:
        rows.append(
            Component(
                "CPU runtime",
                overheads.CPU_RUNTIME_BYTES,
                "always",
                "threads, kernel scratch, Python objects (measured)",
            )
        )

    act = w_bytes if not four_bit else (2 if gpu else 4)  # bnb computes in the compute dtype
    lora_copy = 0 if full_finetune or act == 4 else (2 if gpu else 4)  # GPU: autocast re-casts to bf16
    inserted = inserted_tokens(cfg)  # multi-turn tasks: retrieved passages lengthen every completion
    seq = g.max_prompt_length + g.max_completion_length + inserted
    tokens = t.per_device_train_batch_size * seq
    per_layer = _layer_bytes(a, act, lora_copy, targets, full_finetune) * tokens
    hidden = act * a.hidden * tokens
    mode = checkpoint_mode(cfg, device)
    if mode == "none":
        acts, note = a.layers * per_layer, f"{a.layers} layers x {t.per_device_train_batch_size} x {seq} tokens"
    elif mode == "standard":
        acts, note = a.layers * hidden + per_layer, "checkpointed: a hidden state per layer + 1 layer recomputed"
    else:
        acts, note = 2 * hidden + per_layer, "offloaded checkpoints in CPU RAM + 1 layer recomputed"
    acts += tokens * (act + 4) * a.hidden + 2 * act * a.intermediate * tokens  # final norm; MLP grads in backward
    rows.append(Component(f"activations ({mode} checkpointing)", acts, "train", note))
    if mode == "offloaded":
        rows.append(offload_component(a, cfg, hidden))

    completion_tokens = t.per_device_train_batch_size * (g.max_completion_length + inserted)
    mode_lp = logprobs or ("chunked" if gpu else "full")
    if mode_lp == "full":  # logits, log-softmax, probs and a gradient alive together (the CPU stand-in: fp32)
        logits = 4 * completion_tokens * a.vocab * (act if gpu else 4)
    else:  # one fp32 accumulator tile forward, one in backward, plus per-token statistics
        logits = 2 * min(completion_tokens, LOGPROB_TILE[0]) * min(a.vocab, LOGPROB_TILE[1]) * 4
    rows.append(Component(f"log-probs ({mode_lp})", logits, "train", f"{completion_tokens} completion tokens"))
    if four_bit:
        rows.append(
            Component(
                "4-bit dequantisation",
                overheads.dequantisation_bytes(a, act),
                "train",
                "the largest linear, dequantised for its matmul",
            )
        )
    if not gpu:  # resident from the first forward on: glibc keeps the heap it grew
        rows.append(
            Component(
                "CPU heap (glibc)",
                overheads.heap_bytes(a, tokens, act),
                "always",
                f"small temporaries per layer (under {overheads.MMAP_THRESHOLD // 2**20} MiB)",
            )
        )
    if full_finetune:
        rows.append(
            Component(
                "tied embedding gradient",
                overheads.tied_gradient_bytes(a, grad_bytes),
                "backward end",
                "the head's and the embedding's, summed out of place",
            )
        )
    largest = overheads.largest_trainable(a, cfg.lora.r, targets, full_finetune)
    state_bytes = grad_bytes  # torch keeps AdamW's moments in the parameter's dtype
    rows.append(
        Component(
            "optimizer step",
            overheads.optimizer_step_bytes(t.optim, device, trainable, largest, state_bytes),
            "optimizer step",
            "AdamW's " + ("foreach square roots" if gpu else "per-tensor square root and quotient")
            if t.optim == "adamw_torch"
            else "updates in place",
        )
    )

    kv_token = a.kv_bytes_per_token(2 if gpu else act)
    rollouts = t.per_device_train_batch_size * t.gradient_accumulation_steps
    if g.use_vllm and gpu:
        shared = m.backend == "unsloth"
        nf4 = a.prequantized or m.load_in_4bit  # vLLM quantises in flight as training does (rollout/__init__.py)
        vllm_weights = 0 if shared else _nf4_bytes(a, 2) if nf4 else a.params * 2
        minimum = vllm_weights + VLLM_RUNTIME_BYTES + kv_token * seq  # vLLM refuses to start below one sequence
        utilization = g.vllm_gpu_memory_utilization
        if shared and m.unsloth_standby and gpu_memory_gb:
            utilization = unsloth_standby_utilization(gpu_memory_gb)  # Unsloth replaces the asked-for share
            notes.append(
                f"--unsloth-standby: Unsloth sets vLLM's share to {utilization:.3f} of the GPU (its tier "
                f"for {gpu_memory_gb:g} GB), not {g.vllm_gpu_memory_utilization:g}"
            )
        reserved = max(minimum, int(utilization * gpu_memory_gb * GiB)) if gpu_memory_gb else minimum
        copy = f"its own {'nf4' if nf4 else '16-bit'} copy"
        rows.append(
            Component("vLLM weights", vllm_weights, "always", "shared with training (Unsloth)" if shared else copy)
        )
        rows.append(
            Component(
                "vLLM KV cache + runtime",
                reserved - vllm_weights,
                "always",
                f"{utilization:g} of the GPU" if gpu_memory_gb else "one full-length sequence (vLLM's minimum)",
            )
        )
    else:
        rows.append(
            Component(
                "generation KV cache",
                kv_token * seq * rollouts,
                "rollout",
                f"transformers generate, {rollouts} sequences of {seq} tokens",
            )
        )
        rows.append(Component("generation logits", rollouts * a.vocab * 4 * 2, "rollout", "last-token scores"))
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
    notes.append(
        f"{'bf16/fp16' if act == 2 else 'fp32'} activations, prompts padded to {g.max_prompt_length} "
        f"and completions run to {g.max_completion_length} tokens (the worst case)"
    )
    if t.beta > 0:
        notes.append("beta > 0: the reference log-probs come from the base model with the adapter off (no copy)")
    return MemoryPlan(cfg.model.name, device, tuple(rows), gpu_memory_gb, tuple(notes))


def unsloth_standby_utilization(total_gb: float) -> float:
    """The ``gpu_memory_utilization`` Unsloth 2026.10.9 forces under ``--unsloth-standby`` (whatever was asked):
    unsloth_zoo ``vllm_utils.load_vllm``'s tiers for vLLM >= 0.11, by a tenth of the card, times 0.95."""
    tenth = total_gb * 0.1
    tiers = ((4.0, 0.925), (2.5, 0.9), (2.0, 0.825), (1.4, 0.8), (1.0, 0.775))
    return next((util for floor, util in tiers if tenth >= floor), 0.75) * 0.95


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


def inserted_tokens(cfg: RunConfig) -> int:
    """Tokens a task's environment inserts into one completion at most (search tasks: max_turns x top_k passages);
    0 for single-turn tasks and for task names this build does not know."""
    from lowvram_r1.tasks import get_task

    try:
        task = get_task(cfg.task.name)  # a user's task too (its spec loads in an instant)
    except ValueError:
        return 0
    return task.environment_tokens(cfg.task.options)
