"""Peak memory of one GRPO training step for four set-ups of the same model shape, each in a fresh process, with
the ratio to a full fine-tune and the planner's prediction beside each.

    python bench/memory.py [--layers 4] [--batch 4] [--prompt 64] [--completion 128]

The model is a random-weight Qwen2.5-0.5B shape (hidden 896, vocabulary 151936), ``--layers`` deep. Set-ups: full
fine-tune in fp32 with AdamW (plain TRL defaults on CPU), LoRA r=16, LoRA + gradient checkpointing, QLoRA (NF4
through bitsandbytes, which runs on CPU) + checkpointing. Measured: peak RSS increase of tests/vram_step.py.
Goal: QLoRA + checkpointing at most 0.25x of the full fine-tune; planned / measured between 1.0 and 1.2 (the
planner's promise; bench/memory_sweep.py checks it over every knob).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.vram_step import Point, measure, planned, write_model  # noqa: E402

GiB = 2**30
SETUPS = [
    ("full fine-tune fp32", "full", False),
    ("LoRA", "lora", False),
    ("LoRA + checkpointing", "lora", True),
    ("QLoRA nf4 + checkpointing", "qlora", True),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--completion", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = []
        for name, mode, ckpt in SETUPS:
            point = Point(
                name,
                layers=args.layers,
                batch=args.batch,
                prompt=args.prompt,
                completion=args.completion,
                mode=mode,
                ckpt=ckpt,
            )
            folder = write_model(Path(scratch) / point.folder_name, point.shape)
            results.append((name, measure(point, folder) / GiB, planned(point, folder) / GiB))
    full = results[0][1]
    print(f"{'set-up':<28} {'measured GB':>12} {'x full':>8} {'planned GB':>11} {'planned / measured':>19}")
    for name, measured, plan in results:
        print(f"{name:<28} {measured:>12.3f} {measured / full:>8.2f} {plan:>11.3f} {plan / measured:>19.2f}")


if __name__ == "__main__":
    main()
