"""What one GRPO step holds beyond its resident and saved tensors: the memory planner's named extra terms.

    from lowvram_r1.memory import overheads as o
    o.optimizer_step_bytes("adamw_torch", "cpu", trainable, largest)   # AdamW's temporaries while it steps
    o.heap_bytes(arch, tokens, act=4)                                   # glibc's heap on CPU (small tensors)

``vram.plan`` adds each as a row of its own, so ``lowvram-r1 plan`` shows where the memory goes. Each was found by
measuring one training step (tests/vram_step.py, a fresh process each) against the tensor model, and sized from the
libraries' code (torch 2.13, bitsandbytes 0.50, transformers 5.17, peft 0.21) or from a measurement named below:

- optimizer step: ``torch.optim.AdamW`` on CPU steps one tensor at a time and builds ``exp_avg_sq.sqrt() / c`` as two
  new tensors of that parameter's size; on CUDA it steps all at once (``foreach``) and builds one square root for
  every trainable parameter together. The fused and bitsandbytes 8-bit kernels update in place.
- tied embedding gradient (full fine-tune only): the embedding's gradient is added to the LM head's out of place,
  two more [vocab, hidden] tensors at the end of the backward.
- 4-bit dequantisation: bitsandbytes' training matmul (forward and backward) dequantises one NF4 weight at a time to
  the compute dtype, plus its fp32 block constants.
- CPU runtime: what the first step adds that no tensor accounts for (OpenMP and autograd threads, oneDNN/MKL scratch,
  the model's Python objects): 16 MiB, the peak increase of tests/vram_step.py for a 2-layer width-64 model.
- CPU heap: glibc puts an allocation under its mmap threshold (tests/vram_step.py fixes it at 1 MiB) in its heap and
  does not give freed holes back, so the small temporaries of each layer's forward stay resident from the first
  forward on (planned as resident).
- safety margin: what none of the terms model (fragmentation beyond them, the layer's few unsaved tensors), as a
  share of the planned peak outside vLLM's own reservation (vLLM sizes itself to its share).
"""

from __future__ import annotations

from lowvram_r1.models.shapes import Architecture

MiB = 2**20
CPU_RUNTIME_BYTES = 16 * MiB
MMAP_THRESHOLD = 2**20  # glibc's M_MMAP_THRESHOLD as tests/vram_step.py sets it (MALLOC_MMAP_THRESHOLD_)
SAFETY_MARGIN = 0.05
# Temporaries one decoder layer's forward allocates and frees, by width per token (a Qwen2 / Llama layer of
# transformers 5.17 under peft LoRA, counted with a TorchDispatchMode): RMSNorm's squares and products, rotary
# embedding's halves and sums, LoRA's B outputs and their scaled sums, the residual adds, SiLU and gate x up.
LAYER_TEMPORARIES = {"hidden": 14, "kv": 8, "intermediate": 4}


def optimizer_step_bytes(optim: str, device: str, trainable: int, largest: int, state_bytes: int = 4) -> int:
    """Temporaries of one optimizer step: ``trainable`` parameters, the ``largest`` of them one tensor."""
    if optim != "adamw_torch":  # the 8-bit optimizers' kernels update in place
        return 0
    if device == "cuda":  # foreach: torch._foreach_sqrt(exp_avg_sqs) for every parameter at once
        return trainable * state_bytes
    return 2 * largest * state_bytes  # single tensor: sqrt and its quotient of the largest parameter


def largest_trainable(a: Architecture, r: int, targets: set[str], full: bool) -> int:
    """Elements of the largest trainable tensor: the embedding in a full fine-tune, else a LoRA matrix."""
    if full:
        return max(a.vocab * a.hidden, *(i * o for i, o in a.linear_shapes().values()))
    fused = 2 * r * max(a.hidden, a.intermediate)  # Phi-style qkv_proj / gate_up_proj: outputs side by side
    return max((r * max(shape) for name, shape in a.linear_shapes().items() if name in targets), default=fused)


def tied_gradient_bytes(a: Architecture, grad_bytes: int) -> int:
    """Full fine-tune of a tied model: the embedding's gradient and its sum with the head's, out of place."""
    return 2 * a.vocab * a.hidden * grad_bytes if a.tied else 0


def dequantisation_bytes(a: Architecture, compute_bytes: int) -> int:
    """The largest decoder linear dequantised to the compute dtype, with its fp32 absmax (one per 64 weights)."""
    largest = max(i * o for i, o in a.linear_shapes().values())
    return largest * compute_bytes + largest // 64 * 4


def heap_bytes(a: Architecture, tokens: int, act: int, threshold: int = MMAP_THRESHOLD) -> int:
    """glibc's heap on CPU: each layer's small forward temporaries, and as much again for the embedding, the final
    norm and the head. A tensor of ``threshold`` bytes or more gets its own mapping and is returned when freed."""
    widths = {"hidden": max(a.hidden, a.q_dim), "kv": a.kv_dim, "intermediate": a.intermediate}
    per_layer = 0
    for name, count in LAYER_TEMPORARIES.items():
        size = tokens * widths[name] * act
        per_layer += count * size if size < threshold else 0
    return (a.layers + 1) * per_layer


def margin_bytes(planned: int) -> int:
    return int(SAFETY_MARGIN * planned)
