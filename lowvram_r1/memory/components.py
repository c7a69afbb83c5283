"""The memory planner's rows, one function per part of a GRPO step: weights, trainable state (LoRA, gradients,
optimizer), runtime, training activations, the optimizer step, generation (transformers' KV cache or vLLM's share).

    step = Step.of(cfg, device="cuda", full_finetune=False, inserted=0)
    rows = [*weights(step), *trainable_state(step), *runtime(step), *training(step, None), optimizer_step(step)]

``planner.plan`` puts them together in this order, adds the safety margin and says what the figures assume; the
module docstring of ``memory.planner`` says which library behaviour each term follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from lowvram_r1.config import RunConfig
from lowvram_r1.memory import overheads
from lowvram_r1.models.shapes import Architecture, architecture

GiB = 2**30
# Allowances on CUDA, not measured by this project yet (bench/gpu_check.py reports them against the GPU when it runs):
# the CUDA context, cuBLAS workspaces and caching-allocator rounding, the middle of the 0.5-1 GB they usually take
CUDA_RUNTIME_BYTES = int(0.75 * GiB)
# vLLM's own activation buffers and sampler inside its reservation: its profile run at the 4096-token batch our
# engine sets (rollout/vllm_engine.py: max_num_batched_tokens) costs ~0.1-0.2 GB for 1.5B-7B shapes, plus logits
VLLM_RUNTIME_BYTES = int(0.5 * GiB)
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
class Step:
    """The sizes every row is computed from: the architecture, the dtypes, what trains and how many tokens."""

    cfg: RunConfig
    a: Architecture
    device: str
    full: bool  # every weight trains (bench/memory.py's comparison), not LoRA
    w_bytes: int  # weight dtype bytes
    four_bit: bool
    targets: set[str]  # the LoRA-adapted linears
    trainable: int  # trainable parameters
    grad_bytes: int
    act: int  # activation dtype bytes
    lora_copy: int  # bytes of the copy of its input each adapted linear saves (0: shared)
    inserted: int  # tokens the task's environment inserts into one completion
    seq: int  # prompt + completion (+ inserted) tokens
    tokens: int  # tokens of one micro-batch

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"

    @classmethod
    def of(
        cls, cfg: RunConfig, device: str, full_finetune: bool, inserted: int, arch: Architecture | None = None
    ) -> Step:
        a = arch or architecture(cfg.model.name)  # arch: the run plan's
        t, g, m = cfg.training, cfg.generation, cfg.model
        gpu = device == "cuda"
        w_bytes = {"float32": 4}.get(m.dtype, 2) if gpu else (2 if m.dtype in ("bfloat16", "float16") else 4)
        four_bit = (m.load_in_4bit or a.prequantized) and not full_finetune
        targets = (
            set(a.linear_shapes())
            if cfg.lora.target_modules == "all-linear"
            else {s.strip() for s in cfg.lora.target_modules.split(",")}
        )
        act = w_bytes if not four_bit else (2 if gpu else 4)  # bnb computes in the compute dtype
        seq = g.max_prompt_length + g.max_completion_length + inserted
        return cls(
            cfg=cfg,
            a=a,
            device=device,
            full=full_finetune,
            w_bytes=w_bytes,
            four_bit=four_bit,
            targets=targets,
            trainable=a.params if full_finetune else a.lora_params(cfg.lora.r, cfg.lora.target_modules),
            grad_bytes=w_bytes if full_finetune else 4,
            act=act,
            lora_copy=0 if full_finetune or act == 4 else (2 if gpu else 4),  # GPU: autocast re-casts to bf16
            inserted=inserted,
            seq=seq,
            tokens=t.per_device_train_batch_size * seq,
        )


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


def layer_bytes(a: Architecture, act: int, lora_copy: int, targets: set[str], full: bool) -> int:
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


def nf4_bytes(a: Architecture, dense_bytes: int) -> int:
    """Decoder linears in NF4; embeddings, lm_head, norms and anything outside the decoder at ``dense_bytes``."""
    return int(a.linear_params * NF4_BYTES + (a.embedding_params + a.other_params + a.extra_params) * dense_bytes)


def weights(s: Step) -> list[Component]:
    """The base model's weights, resident all step."""
    a, params = s.a, f"{s.a.params / 1e9:.2f}B params"
    if s.four_bit:
        dense = 4 if s.cfg.model.backend != "unsloth" else s.w_bytes  # peft upcasts non-quantised weights for k-bit
        return [Component("base weights (nf4)", nf4_bytes(a, dense), "always", params)]
    return [Component(f"base weights ({8 * s.w_bytes}-bit)", a.params * s.w_bytes, "always", params)]


def trainable_state(s: Step) -> list[Component]:
    """LoRA adapters (fp32), their gradients and AdamW's two moments."""
    rows = []
    if not s.full:
        note = f"r={s.cfg.lora.r}, {s.trainable / 1e6:.1f}M params"
        rows.append(Component("LoRA adapters (fp32)", s.trainable * 4, "always", note))
    rows.append(Component("gradients", s.trainable * s.grad_bytes, "always", "trainable parameters only"))
    optim = s.cfg.training.optim
    eight_bit = optim.endswith("8bit")
    moments = "two moments, " + ("8-bit" if eight_bit else "fp32")
    rows.append(Component(f"optimizer ({optim})", s.trainable * (2 if eight_bit else 8), "always", moments))
    return rows


def runtime(s: Step) -> list[Component]:
    """What the runtime holds beyond tensors: the CUDA allowance, or the CPU runtime as measured."""
    if s.gpu:
        return [Component("CUDA runtime", CUDA_RUNTIME_BYTES, "always", "context, workspaces, allocator: an allowance")]
    note = "threads, kernel scratch, Python objects (measured)"
    return [Component("CPU runtime", overheads.CPU_RUNTIME_BYTES, "always", note)]


def training(s: Step, logprobs: str | None) -> list[Component]:
    """The forward/backward: saved activations (and offloaded checkpoints), log-probs, 4-bit dequantisation, the
    CPU heap, and the tied embedding gradient of a full fine-tune."""
    a, t, g = s.a, s.cfg.training, s.cfg.generation
    batch = t.per_device_train_batch_size
    per_layer = layer_bytes(a, s.act, s.lora_copy, s.targets, s.full) * s.tokens
    hidden = s.act * a.hidden * s.tokens
    mode = checkpoint_mode(s.cfg, s.device)
    if mode == "none":
        acts, note = a.layers * per_layer, f"{a.layers} layers x {batch} x {s.seq} tokens"
    elif mode == "standard":
        acts, note = a.layers * hidden + per_layer, "checkpointed: a hidden state per layer + 1 layer recomputed"
    else:
        acts, note = 2 * hidden + per_layer, "offloaded checkpoints in CPU RAM + 1 layer recomputed"
    acts += s.tokens * (s.act + 4) * a.hidden + 2 * s.act * a.intermediate * s.tokens  # final norm; MLP grads
    rows = [Component(f"activations ({mode} checkpointing)", acts, "train", note)]
    if mode == "offloaded":
        rows.append(offload_component(a, s.cfg, hidden))

    completion_tokens = batch * (g.max_completion_length + s.inserted)
    mode_lp = logprobs or ("chunked" if s.gpu else "full")
    if mode_lp == "full":  # logits, log-softmax, probs and a gradient alive together (the CPU stand-in: fp32)
        logits = 4 * completion_tokens * a.vocab * (s.act if s.gpu else 4)
    else:  # one fp32 accumulator tile forward, one in backward, plus per-token statistics
        logits = 2 * min(completion_tokens, LOGPROB_TILE[0]) * min(a.vocab, LOGPROB_TILE[1]) * 4
    rows.append(Component(f"log-probs ({mode_lp})", logits, "train", f"{completion_tokens} completion tokens"))
    if s.four_bit:
        note = "the largest linear, dequantised for its matmul"
        rows.append(Component("4-bit dequantisation", overheads.dequantisation_bytes(a, s.act), "train", note))
    if not s.gpu:  # resident from the first forward on: glibc keeps the heap it grew
        note = f"small temporaries per layer (under {overheads.MMAP_THRESHOLD // 2**20} MiB)"
        rows.append(Component("CPU heap (glibc)", overheads.heap_bytes(a, s.tokens, s.act), "always", note))
    if s.full:
        tied = overheads.tied_gradient_bytes(a, s.grad_bytes)
        note = "the head's and the embedding's, summed out of place"
        rows.append(Component("tied embedding gradient", tied, "backward end", note))
    return rows


def optimizer_step(s: Step) -> Component:
    """The optimizer step's temporaries (torch keeps AdamW's moments in the parameter's dtype)."""
    optim = s.cfg.training.optim
    largest = overheads.largest_trainable(s.a, s.cfg.lora.r, s.targets, s.full)
    return Component(
        "optimizer step",
        overheads.optimizer_step_bytes(optim, s.device, s.trainable, largest, s.grad_bytes),
        "optimizer step",
        "AdamW's " + ("foreach square roots" if s.gpu else "per-tensor square root and quotient")
        if optim == "adamw_torch"
        else "updates in place",
    )


def unsloth_standby_utilization(total_gb: float) -> float:
    """The ``gpu_memory_utilization`` Unsloth 2026.10.9 forces under ``--unsloth-standby`` (whatever was asked):
    unsloth_zoo ``vllm_utils.load_vllm``'s tiers for vLLM >= 0.11, by a tenth of the card, times 0.95."""
    tenth = total_gb * 0.1
    tiers = ((4.0, 0.925), (2.5, 0.9), (2.0, 0.825), (1.4, 0.8), (1.0, 0.775))
    return next((util for floor, util in tiers if tenth >= floor), 0.75) * 0.95


def generation(s: Step, gpu_memory_gb: float | None) -> tuple[list[Component], list[str]]:
    """Rollouts: colocated vLLM's reservation for the whole run, or transformers ``generate``'s KV cache and
    last-token scores; with a note when Unsloth replaces vLLM's share."""
    a, t, g, m = s.a, s.cfg.training, s.cfg.generation, s.cfg.model
    kv_token = a.kv_bytes_per_token(2 if s.gpu else s.act)
    rollouts = t.per_device_train_batch_size * t.gradient_accumulation_steps
    if not (g.use_vllm and s.gpu):
        kv = kv_token * s.seq * rollouts
        return [
            Component(
                "generation KV cache", kv, "rollout", f"transformers generate, {rollouts} sequences of {s.seq} tokens"
            ),
            Component("generation logits", rollouts * a.vocab * 4 * 2, "rollout", "last-token scores"),
        ], []
    notes = []
    shared = m.backend == "unsloth"
    nf4 = a.prequantized or m.load_in_4bit  # vLLM quantises in flight as training does (rollout/__init__.py)
    vllm_weights = 0 if shared else nf4_bytes(a, 2) if nf4 else a.params * 2
    minimum = vllm_weights + VLLM_RUNTIME_BYTES + kv_token * s.seq  # vLLM refuses to start below one sequence
    utilization = g.vllm_gpu_memory_utilization
    if shared and m.unsloth_standby and gpu_memory_gb:
        utilization = unsloth_standby_utilization(gpu_memory_gb)  # Unsloth replaces the asked-for share
        notes.append(
            f"--unsloth-standby: Unsloth sets vLLM's share to {utilization:.3f} of the GPU (its tier "
            f"for {gpu_memory_gb:g} GB), not {g.vllm_gpu_memory_utilization:g}"
        )
    reserved = max(minimum, int(utilization * gpu_memory_gb * GiB)) if gpu_memory_gb else minimum
    copy = f"its own {'nf4' if nf4 else '16-bit'} copy"
    share = f"{utilization:g} of the GPU" if gpu_memory_gb else "one full-length sequence (vLLM's minimum)"
    return [
        Component("vLLM weights", vllm_weights, "always", "shared with training (Unsloth)" if shared else copy),
        Component("vLLM KV cache + runtime", reserved - vllm_weights, "always", share),
    ], notes
