"""Peak memory of one GRPO training step for four set-ups of the same model shape, each in a fresh process, with
the ratio to a full fine-tune and the planner's prediction beside each.

    python bench/memory.py [--layers 4] [--batch 4] [--prompt 64] [--completion 128]

The model is a random-weight Qwen2.5-0.5B shape (hidden 896, vocabulary 151936), ``--layers`` deep. Set-ups: full
fine-tune in fp32 with AdamW (plain TRL defaults on CPU), LoRA r=16, LoRA + gradient checkpointing, QLoRA (NF4
through bitsandbytes, which runs on CPU) + checkpointing. Measured: peak RSS increase of tests/vram_step.py.
Goal: QLoRA + checkpointing at most 0.25x of the full fine-tune.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from lowvram_r1 import config
from lowvram_r1.memory import planner as vram

ROOT = Path(__file__).resolve().parent.parent
SETUPS = [("full fine-tune fp32", "full", 0), ("LoRA", "lora", 0), ("LoRA + checkpointing", "lora", 1),
          ("QLoRA nf4 + checkpointing", "qlora", 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--completion", type=int, default=128)
    args = parser.parse_args()
    from transformers import AutoConfig, AutoModelForCausalLM

    sys.path.insert(0, str(ROOT))
    from tests.test_vram_measured import QWEN05_4_LAYERS
    from tests.vram_step import run_step

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "config.json").write_text(json.dumps({**QWEN05_4_LAYERS, "num_hidden_layers": args.layers}))
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(folder)
        results = []
        for name, mode, ckpt in SETUPS:
            measured = run_step(folder, args.batch, args.prompt, args.completion, bool(ckpt), mode) / vram.GiB
            cfg = config.from_dict({
                "model": {"name": folder, "gradient_checkpointing": bool(ckpt), "load_in_4bit": mode == "qlora"},
                "training": {"per_device_train_batch_size": args.batch, "num_generations": args.batch},
                "generation": {"max_prompt_length": args.prompt, "max_completion_length": args.completion}})
            p = vram.plan(cfg, device="cpu", full_finetune=mode == "full")
            results.append((name, measured, (p.phase_bytes("always") + p.phase_bytes("train")) / vram.GiB))
    full = results[0][1]
    print(f"{'set-up':<28} {'measured GB':>12} {'x full':>8} {'planned GB':>11}")
    for name, measured, planned in results:
        print(f"{name:<28} {measured:>12.3f} {measured / full:>8.2f} {planned:>11.3f}")


if __name__ == "__main__":
    main()
