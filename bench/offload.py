"""Training-phase memory with gradient checkpointing ``true`` against ``offload``, the same config side by side.

    python bench/offload.py [--layers 24] [--batch 2] [--prompt 32] [--completion 64]

The model is a random-weight Qwen2.5-0.5B shape (the planner's table), ``--layers`` deep, loaded through the hf
backend (``load_hf``, so ``offload`` is ours: backends/offload.py) with LoRA r=16 on every projection, in fp32.
One training step is what the planner's training phase covers: the forward through TRL's fused LM head (log-probs of
the completion tokens; the CPU stand-in here), GRPO's clipped loss, backward.

Measured with saved-tensor hooks, at the end of the forward (what waits for the backward): what autograd keeps
where the model lives ("device": the GPU on a GPU machine; parameters not counted) and what the offload hook holds
in CPU RAM. On a CPU both are the same RAM, so peak RSS does not move and is not what this prints; on a GPU the
``device`` column is GPU memory (``bench/gpu_check.py`` measures ``max_memory_allocated`` with offload there).
Beside it, the planner's figures for the same config on a GPU: GPU memory saved and CPU RAM used. No timings: on a
CPU offload copies nothing, so its cost (two copies of each layer's input over PCIe per step) shows only on a GPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MiB = 2**20


def build_model(folder: Path, layers: int) -> None:
    """A random-weight Qwen2.5-0.5B shape, ``layers`` deep, with the tiny model's tokenizer (ids are random)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from lowvram_r1.models.shapes import TABLE
    from lowvram_r1.models.tiny import ensure_tiny_tokenizer, spec_for

    a = TABLE["qwen2.5-0.5b"]
    torch.manual_seed(0)
    Qwen2ForCausalLM(
        Qwen2Config(**{**a.config_fields(), "num_hidden_layers": layers}, max_position_embeddings=4096)
    ).save_pretrained(folder)
    AutoTokenizer.from_pretrained(ensure_tiny_tokenizer(spec_for("countdown"))).save_pretrained(folder)


class Offloaded:
    """Bytes the offload hook holds: torch's ``save_on_cpu`` with a tally of what it packs."""

    bytes = 0

    @classmethod
    def hook(cls) -> type:
        from torch.autograd.graph import save_on_cpu

        class Tallied(save_on_cpu):
            def __init__(self, pin_memory: bool = False, device_type: str = "cuda") -> None:
                super().__init__(pin_memory=pin_memory, device_type=device_type)
                pack = self.pack_hook

                def tallied(tensor: Any) -> Any:
                    packed = pack(tensor)
                    cls.bytes += packed[1].untyped_storage().nbytes()
                    return packed

                self.pack_hook = tallied

        return Tallied


def step(cfg: Any, folder: Path) -> dict[str, int]:
    """One training step of ``cfg``; what waits for the backward at the end of the forward, in bytes: kept by
    autograd inside the decoder layers and outside them (embeddings, final norm, LM head, log-probs), offloaded."""
    import torch
    from peft import get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    from lowvram_r1.backends.hf import load_hf, lora_config
    from lowvram_r1.models.hardware import Hardware

    torch.manual_seed(0)
    model = load_hf(cfg, str(folder), Hardware(cuda=False, name="cpu", memory_gb=0.0, bf16=False))[0]
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))  # as GRPOTrainer does, on the base model
    decoder = model.model
    model = get_peft_model(model, lora_config(cfg))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=None)  # as transformers' Trainer does
    model.train()
    g = cfg.generation
    batch, completion = cfg.training.per_device_train_batch_size, g.max_completion_length
    ids = torch.randint(0, model.config.vocab_size, (batch, g.max_prompt_length + completion))
    labels = ids.clone()
    labels[:, : g.max_prompt_length] = -100
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[str, dict[int, int]] = {"layers": {}, "outside": {}}
    where = ["outside"]  # the decoder layers run between the embedding's output and the final norm's input
    decoder.embed_tokens.register_forward_hook(lambda *_: where.__setitem__(0, "layers"))
    decoder.norm.register_forward_pre_hook(lambda *_: where.__setitem__(0, "outside"))

    def keep(tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            kept[where[0]][storage.data_ptr()] = storage.nbytes()
        return tensor

    Offloaded.bytes = 0
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)
        logps = out.log_probs[:, -completion:]
        ratio = torch.exp(logps - logps.detach())
        advantages = torch.randn(batch, 1)
        loss = -torch.min(ratio * advantages, torch.clamp(ratio, 0.8, 1.2) * advantages).mean()
    measured = {part: sum(sizes.values()) for part, sizes in kept.items()} | {"offloaded": Offloaded.bytes}
    loss.backward()
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--completion", type=int, default=64)
    args = parser.parse_args()

    from lowvram_r1 import config
    from lowvram_r1.backends import offload
    from lowvram_r1.memory import planner
    from lowvram_r1.models.cpu_logprob import install

    install()
    offload.save_on_cpu = Offloaded.hook()
    modes = (True, "offload")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        build_model(folder, args.layers)
        overrides = {
            "model": str(folder),
            "backend": "hf",
            "dtype": "float32",
            "batch-size": args.batch,
            "num_generations": args.batch,
            "gradient_accumulation_steps": 1,
            "max_prompt_length": args.prompt,
            "max_completion_length": args.completion,
        }
        cfgs = {m: config.load(None, {**overrides, "gradient_checkpointing": m}) for m in modes}
        measured = {m: step(cfgs[m], folder) for m in modes}
        plans = {m: planner.plan(cfgs[m]) for m in modes}  # the same config on a GPU, fp32 as measured

    def activations(mode: Any) -> int:
        return next(c.bytes for c in plans[mode].components if c.name.startswith("activations"))

    host = next(c.bytes for c in plans["offload"].components if c.phase == "host")
    tokens = args.batch * (args.prompt + args.completion)
    print(
        f"Qwen2.5-0.5B shape, {args.layers} layers, LoRA r=16 fp32, {args.batch} x ({args.prompt} + "
        f"{args.completion}) = {tokens} tokens, one training step each; measured on CPU with saved-tensor hooks\n"
    )
    print(
        f"{'checkpointing':<14} {'kept: decoder layers':>21} {'kept: outside them':>19} {'kept: total':>12} "
        f"{'offloaded (CPU RAM)':>20}   MiB"
    )
    for mode in modes:
        m = measured[mode]
        print(
            f"{str(mode).lower():<14} {m['layers'] / MiB:>21.2f} {m['outside'] / MiB:>19.2f} "
            f"{(m['layers'] + m['outside']) / MiB:>12.2f} {m['offloaded'] / MiB:>20.2f}"
        )
    plain, off = measured[True], measured["offload"]
    saved = plain["layers"] + plain["outside"] - off["layers"] - off["outside"]
    planned_saved = activations(True) - activations("offload")
    print(
        f"\noffload: {saved / MiB:.2f} MiB fewer kept where the model lives (planned on a GPU at the backward's "
        f"peak, when one layer's input is back: {planned_saved / MiB:.2f} MiB), {off['offloaded'] / MiB:.2f} MiB "
        f"held in CPU RAM (planned: {host / MiB:.2f} MiB), copied out and back once per step on a GPU; the decoder "
        f"layers keep {off['layers'] / max(plain['layers'], 1):.2f}x of what plain checkpointing keeps there"
    )


if __name__ == "__main__":
    main()
