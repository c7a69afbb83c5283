"""Helper run in a fresh process by tests/test_vram_measured.py and bench/memory.py: one GRPO training step of a
random-weight model, printing the peak RSS increase (bytes) as JSON. Not a test module (no test_ prefix).

    python tests/vram_step.py MODEL_DIR BATCH PROMPT COMPLETION CKPT(0/1) MODE(lora|full|qlora) [R]

The step is what the planner's training phase covers: the policy forward through TRL's fused LM head (log-probs
of the completion tokens; the CPU stand-in on this machine), GRPO's clipped loss with advantages, backward and
an AdamW step. Rollout generation is not part of it (its KV cache is planned as a separate, smaller phase).
Measured: the kernel's peak RSS of the step (reset after loading) minus RSS before the model was built, so the
resident weights, adapters and optimizer count and loading's own transient does not. Linux only (/proc).
``run_step`` fixes glibc's mmap threshold at 1 MiB: by default it rises after each large free, so freed multi-MB
temporaries (bitsandbytes' dequantised weights) stay in the heap and RSS measures glibc's retention, not tensors.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import subprocess
import sys


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


def run_step(model_dir: str, batch: int, prompt: int, completion: int, ckpt: bool, mode: str) -> int:
    """Run one measured step in a fresh process; returns its peak RSS increase in bytes."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**20)}
    cmd = [sys.executable, __file__, model_dir, str(batch), str(prompt), str(completion), str(int(ckpt)), mode]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_increase"]


def main() -> None:
    path, batch, prompt, completion, ckpt, mode = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
    r = int(sys.argv[7]) if len(sys.argv) > 7 else 16
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from trl.trainer.utils import add_fused_lm_head

    from lowvram_r1.backends.cpu_logprob import install

    install()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    start = rss()
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.float32) if mode == "qlora" else None
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
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt + completion))
    labels = ids.clone()
    labels[:, :prompt] = -100
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)
    logps, entropy = out.log_probs[:, -completion:], out.entropy  # GRPOTrainer keeps entropies for its metrics
    advantages = torch.randn(batch, 1)
    ratio = torch.exp(logps - logps.detach())
    loss = -torch.min(ratio * advantages, torch.clamp(ratio, 0.8, 1.2) * advantages).mean()
    loss.backward()
    optimizer.step()
    del entropy
    print(json.dumps({"peak_increase": peak_rss() - start}))


if __name__ == "__main__":
    main()
