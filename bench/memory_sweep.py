"""The memory planner against measurement over everything that changes memory: planned / measured, one run.

    python bench/memory_sweep.py                      # every point (~10 min on 2 cores)
    python bench/memory_sweep.py --only base,qlora    # some points
    python bench/memory_sweep.py --models /tmp/shapes # keep the random-weight model folders between runs

Each point is one GRPO training step of a random-weight Qwen2.5-0.5B-like model (vocabulary 151936) in a fresh
process (tests/vram_step.py: peak RSS increase, glibc's mmap threshold at 1 MiB) beside ``vram.plan(device="cpu")``
for the same set-up (resident + the largest training phase + the safety margin). From a base point (4 layers,
hidden 896, 2 completions of 32 + 64 tokens, LoRA r=16 on all linears, fp32, no checkpointing) one thing changes
at a time: layers, hidden size, completions per micro-batch, prompt and completion length, LoRA rank, 4-bit,
checkpointing, full fine-tune; a tiny model (width 64, vocabulary 512) shows the CPU runtime term almost alone, and
the four set-ups of bench/memory.py at 24 layers close the table. The planner
promises planned / measured between 1.0 and 1.2 (tests/memory/test_planner_measured.py checks a handful of these
points).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.vram_step import Point, measure, planned, write_model  # noqa: E402

GiB = 2**30
POINTS = [
    Point("base"),
    Point("runtime (tiny)", layers=2, hidden=64, vocab=512),
    Point("2 layers", layers=2),
    Point("8 layers", layers=8),
    Point("hidden 512", hidden=512),
    Point("hidden 1536", hidden=1536),
    Point("1 completion", batch=1),
    Point("8 completions", batch=8),
    Point("prompt 256", prompt=256),
    Point("completion 256", completion=256),
    Point("r=4", r=4),
    Point("r=64", r=64),
    Point("checkpointing", ckpt=True),
    Point("4-bit (QLoRA)", mode="qlora"),
    Point("QLoRA + checkpointing", mode="qlora", ckpt=True),
    Point("full fine-tune", mode="full"),
    Point("24L full fine-tune", layers=24, mode="full"),
    Point("24L LoRA", layers=24),
    Point("24L LoRA + checkpointing", layers=24, ckpt=True),
    Point("24L QLoRA + checkpointing", layers=24, mode="qlora", ckpt=True),
]


def describe(p: Point) -> str:
    mode = {"lora": f"LoRA r={p.r}", "qlora": f"QLoRA r={p.r}", "full": "full"}[p.mode]
    vocab = "" if p.vocab == 151936 else f" vocab {p.vocab}"
    return f"{p.layers}x{p.hidden}{vocab}, {p.batch} x {p.prompt}+{p.completion}, {mode}{', ckpt' if p.ckpt else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated point names (default: all)")
    parser.add_argument("--models", help="folder for the random-weight models (default: a temporary one)")
    args = parser.parse_args()
    names = {n.strip() for n in args.only.split(",")} if args.only else None
    points = [p for p in POINTS if names is None or p.name in names]
    if not points:
        parser.error(f"no such point; choose from: {', '.join(p.name for p in POINTS)}")
    with tempfile.TemporaryDirectory() as scratch:
        models = Path(args.models or scratch)
        print(
            "| point | set-up | measured GB | planned GB | planned / measured | s |\n|---|---|---|---|---|---|",
            flush=True,
        )
        ratios = []
        for p in points:
            started = time.monotonic()
            folder = write_model(models / p.folder_name, p.shape)
            measured = measure(p, folder)
            plan = planned(p, folder)
            ratios.append(plan / measured)
            print(
                f"| {p.name} | {describe(p)} | {measured / GiB:.3f} | {plan / GiB:.3f} | {plan / measured:.3f} | "
                f"{time.monotonic() - started:.0f} |",
                flush=True,
            )
    inside = sum(1.0 <= r <= 1.2 for r in ratios)
    print(f"\n{inside} of {len(ratios)} points within 1.0-1.2 (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
