"""Helper run in a fresh process by tests/memory/test_planner_measured.py and bench/memory*.py: one GRPO training step
of a random-weight model, printing the peak RSS increase (bytes) as JSON. Not a test module (no test_ prefix).

    python tests/vram_step.py MODEL_DIR BATCH PROMPT COMPLETION CKPT(0/1) MODE(lora|full|qlora) [R]

The step is what the planner's training phases cover: the policy forward through TRL's fused LM head (log-probs
of the completion tokens; the CPU stand-in on this machine), GRPO's clipped loss with advantages, backward and
an AdamW step. As in GRPOTrainer, the entropies are read for the metrics and dropped before the backward (they go
out of scope with ``compute_loss``), and the gradients are set to None after each step. Two steps run: AdamW makes
its moments in the first step's ``optimizer.step()``, so only from the second on do they sit beside the forward's
activations, as in every later step of a run. Rollout generation is not part of it (its KV cache is planned as a
separate, smaller phase). Measured: the kernel's peak RSS of both steps (reset after loading) minus RSS before the
model was built, so the resident weights, adapters and optimizer count and loading's own transient does not; the
first step's peak is printed too. Linux only (/proc).
``run_step`` fixes glibc's mmap threshold at 1 MiB: by default it rises after each large free, so freed multi-MB
temporaries (bitsandbytes' dequantised weights) stay in the heap and RSS measures glibc's retention, not tensors.

Also the pieces a sweep needs (bench/memory_sweep.py, tests/memory/test_planner_measured.py): ``Point`` (one set-up),
``write_model`` (a random-weight Qwen2 folder of a given shape) and ``planned`` (the planner's figure for a point).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

QWEN05 = {  # the real Qwen2.5-0.5B shape; sweeps override layers and widths
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "num_hidden_layers": 24,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
}
WIDTHS = {  # hidden -> (heads, kv heads, intermediate), as in Qwen2.5 models of that width (64, 512: scaled down)
    64: (2, 1, 128),
    512: (8, 2, 2816),
    896: (14, 2, 4864),
    1536: (12, 2, 8960),
}


@dataclass(frozen=True)
class Point:
    """One measured set-up: a Qwen2.5-0.5B-like shape ``layers`` deep and ``hidden`` wide, one micro-batch."""

    name: str
    layers: int = 4
    hidden: int = 896
    batch: int = 2
    prompt: int = 32
    completion: int = 64
    r: int = 16
    mode: str = "lora"  # lora | qlora | full
    ckpt: bool = False
    vocab: int = QWEN05["vocab_size"]

    @property
    def shape(self) -> dict:
        heads, kv, intermediate = WIDTHS[self.hidden]
        return {
            **QWEN05,
            "num_hidden_layers": self.layers,
            "hidden_size": self.hidden,
            "num_attention_heads": heads,
            "num_key_value_heads": kv,
            "intermediate_size": intermediate,
            "vocab_size": self.vocab,
        }

    @property
    def folder_name(self) -> str:
        return f"qwen2-{self.layers}x{self.hidden}-v{self.vocab}"


def write_model(folder: Path, shape: dict) -> Path:
    """A random-weight model of ``shape`` (a config.json dict) saved in ``folder``; reused if already there."""
    if not (folder / "model.safetensors").is_file():
        from transformers import AutoConfig, AutoModelForCausalLM

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(shape))
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(folder)
    return folder


def planned(point: Point, model_dir: Path | str) -> int:
    """The planner's bytes for the step ``run_step`` measures: resident + the largest training phase + margin."""
    from lowvram_r1 import config
    from lowvram_r1.memory import planner as vram

    gens = max(point.batch, 2)  # GRPO needs a group of 2; a micro-batch of 1 is half a group
    cfg = config.from_dict(
        {
            "model": {
                "name": str(model_dir),
                "gradient_checkpointing": point.ckpt,
                "load_in_4bit": point.mode == "qlora",
            },
            "lora": {"r": point.r, "alpha": 2 * point.r},
            "training": {
                "per_device_train_batch_size": point.batch,
                "num_generations": gens,
                "gradient_accumulation_steps": gens // point.batch,
            },
            "generation": {"max_prompt_length": point.prompt, "max_completion_length": point.completion},
        }
    )
    plan = vram.plan(cfg, device="cpu", full_finetune=point.mode == "full")
    return plan.peak_bytes(vram.PHASES[:3])


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak() -> None:
    """Forget loading's transient peak (a 4-bit load holds the fp32 weights while quantising): return freed heap
    to the system, then reset the kernel's high-water mark so VmHWM measures the step from here on."""
    gc.collect()  # the last reference to the checkpoint's mmap goes here
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def run_step(model_dir: str, batch: int, prompt: int, completion: int, ckpt: bool, mode: str, r: int = 16) -> int:
    """Run one measured step in a fresh process; returns its peak RSS increase in bytes."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**20)}
    cmd = [sys.executable, __file__, model_dir, str(batch), str(prompt), str(completion), str(int(ckpt)), mode, str(r)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_increase"]


def measure(point: Point, model_dir: Path | str) -> int:
    return run_step(str(model_dir), point.batch, point.prompt, point.completion, point.ckpt, point.mode, point.r)


def main() -> None:
    path, batch, prompt, completion, ckpt, mode = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
    r = int(sys.argv[7]) if len(sys.argv) > 7 else 16
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from trl.trainer.utils import add_fused_lm_head

    from lowvram_r1.models.cpu_logprob import install

    install()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    start = rss()
    quant = (
        BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32,
        )
        if mode == "qlora"
        else None
    )
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, quantization_config=quant)
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))  # as GRPOTrainer does, on the base model
    if mode == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(ckpt))
    if mode != "full":
        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear"))
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    for param in model.parameters():  # own the weights: unquantised ones still sit in the safetensors mmap, whose
        if type(param).__name__ != "Params4bit":  # resident pages would also count what quantisation already
            param.data = param.data.clone()  # replaced (file-backed, reclaimable); a GPU copy drops them the same way
    model.train()  # as the trainer does: transformers only checkpoints layers in training mode
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    reset_peak()
    peaks = []
    for _ in range(2):
        ids = torch.randint(0, model.config.vocab_size, (batch, prompt + completion))
        labels = ids.clone()
        labels[:, :prompt] = -100
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)
        logps, entropy = out.log_probs[:, -completion:], out.entropy[:, -completion:]
        advantages = torch.randn(batch, 1)
        ratio = torch.exp(logps - logps.detach())
        loss = -torch.min(ratio * advantages, torch.clamp(ratio, 0.8, 1.2) * advantages).mean()
        mean_entropy = float(entropy.detach().mean())  # GRPOTrainer's entropy metric
        del out, entropy  # compute_loss returns: its outputs and entropies go before the backward
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # as the Trainer does after each step
        del logps, ratio, loss
        peaks.append(peak_rss() - start)
    print(json.dumps({"peak_increase": max(peaks), "first_step": peaks[0], "mean_entropy": mean_entropy}))


if __name__ == "__main__":
    main()
