"""The GPU check kit: one prepared command that measures, the moment a GPU machine is lent, what only a GPU can show.

    python bench/gpu_check.py --out OUT               # GPU, hf backend: memory vs plan, s/step, tokens/s, verdicts
    python bench/gpu_check.py --out OUT --unsloth     # GPU, second command: the Unsloth backend beside hf
    python bench/gpu_check.py --out OUT --cpu         # the same plumbing on tiny shapes on CPU (CI runs it)
    bash bench/prepare_gpu_wheels.sh                  # the wheel folders a bare GPU machine needs (README)

Models are random-weight folders built from the planner's shape table (no hub): a random model of a given shape and
length gives true memory and speed figures. Data is a local GSM8K-style file of prompts of ~256 tokens. Every case
trains through ``engine.train`` (not a loop of its own) in a fresh child process, so peaks never mix:

1. Qwen2.5-0.5B and -1.5B shapes, 8 completions of 256 tokens: LoRA bf16 + checkpointing, QLoRA NF4 +
   checkpointing, and the fp16 path a T4 takes — measured ``max_memory_allocated`` / ``max_memory_reserved`` and the
   device peak (reserved + what the process holds outside torch's allocator: CUDA context, library handles) beside
   the plan, with planned / device peak (the planner promises 1.0-1.2) and the plan's CUDA-runtime allowance against
   what it stands for (context + reserved - allocated), seconds per step, and generation tokens/s; on the 1.5B
   shape also QLoRA with offloaded checkpointing (``gradient_checkpointing: offload``) beside plain checkpointing.
2. The planner's verdict against reality: the process capped to a consumer card
   (``torch.cuda.set_per_process_memory_fraction``) runs the shipped gsm8k recipe of that tier; one config the plan
   says does not fit runs anyway (``force``) and must run out of memory.
3. ``--unsloth``: the Unsloth backend (``fast_inference`` off: vLLM cannot travel) on the 0.5B shape, LoRA and
   4-bit, beside the hf backend's figures for the same config.

Writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.md`` (stamped with device, date and commit); cases past
``--budget-minutes`` are listed as skipped, never guessed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPES = {"qwen2.5-0.5b": "Qwen2.5-0.5B", "qwen2.5-1.5b": "Qwen2.5-1.5B", "qwen2.5-3b": "Qwen2.5-3B"}
SETUPS = {  # name -> config overrides
    "LoRA bf16 + ckpt": {"dtype": "bfloat16"},
    "QLoRA nf4 + ckpt": {"dtype": "bfloat16", "load_in_4bit": True},
    "QLoRA nf4 + offload": {"dtype": "bfloat16", "load_in_4bit": True, "gradient_checkpointing": "offload"},
    "fp16 (T4 path)": {"dtype": "float16", "load_in_4bit": True},
    "LoRA fp32 + ckpt": {},  # CPU mode
    "QLoRA nf4 + ckpt (CPU)": {"load_in_4bit": True},
}
LENGTHS = {"max_prompt_length": 320, "max_completion_length": 256, "batch-size": 8, "num_generations": 8}


def gpu_cases() -> list[dict[str, Any]]:
    setups = {
        "qwen2.5-0.5b": ("LoRA bf16 + ckpt", "QLoRA nf4 + ckpt", "fp16 (T4 path)"),
        # the 6 and 8 GB recipes' model: QLoRA with the layer inputs offloaded beside plain checkpointing
        "qwen2.5-1.5b": ("LoRA bf16 + ckpt", "QLoRA nf4 + ckpt", "QLoRA nf4 + offload", "fp16 (T4 path)"),
    }
    cases = [{"part": "measure", "shape": s, "setup": u, "steps": 3} for s, names in setups.items() for u in names]
    for tier, shape in ((16, "qwen2.5-3b"), (8, "qwen2.5-1.5b"), (6, "qwen2.5-1.5b")):
        cases.append(
            {"part": "verdict", "shape": shape, "recipe": f"configs/gsm8k/{tier}gb.yaml", "cap_gb": tier, "steps": 2}
        )
    cases.append(
        {"part": "verdict", "shape": "qwen2.5-3b", "recipe": "configs/gsm8k/16gb.yaml", "cap_gb": 6, "steps": 2}
    )  # the plan says no: it must run out of memory
    return cases


def unsloth_cases() -> list[dict[str, Any]]:
    return [
        {"part": "unsloth", "shape": "qwen2.5-0.5b", "setup": u, "backend": b, "steps": 3}
        for u in ("LoRA bf16 + ckpt", "QLoRA nf4 + ckpt")
        for b in ("unsloth", "hf")
    ]


def cpu_cases() -> list[dict[str, Any]]:
    return [
        {"part": "measure", "shape": "tiny", "setup": u, "steps": 2}
        for u in ("LoRA fp32 + ckpt", "QLoRA nf4 + ckpt (CPU)")
    ]


# -- building what the cases need (no hub) --------------------------------------------------------------------------
def build_model(shape: str, folder: Path) -> Path:
    """A random-weight model folder of ``shape`` (the planner's table, or a small ``tiny`` one) with a local
    byte-level tokenizer (the tiny model's: tokens it emits fit any vocabulary)."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from lowvram_r1.backends.tiny import ensure_tiny_tokenizer, spec_for
    from lowvram_r1.memory.shapes import TABLE

    a = TABLE.get(shape)
    sizes = (
        dict(
            hidden_size=a.hidden,
            num_hidden_layers=a.layers,
            num_attention_heads=a.heads,
            num_key_value_heads=a.kv_heads,
            intermediate_size=a.intermediate,
            vocab_size=a.vocab,
            tie_word_embeddings=a.tied,
        )
        if a
        else dict(
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=64,
            intermediate_size=256,
            vocab_size=512,
            tie_word_embeddings=True,
        )
    )
    tokenizer = AutoTokenizer.from_pretrained(ensure_tiny_tokenizer(spec_for("countdown")))
    config = Qwen2Config(
        **sizes,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_data(path: Path) -> Path:
    """GSM8K-style rows whose prompts are ~256 tokens for the byte-level tokenizer (numbers vary per row)."""
    filler = " Each box holds the same number of items, and nothing is lost or added on the way."
    rows = [
        {
            "question": f"Ann packs {i % 17 + 2} boxes of {i % 9 + 3} apples." + filler * 2 + " How many apples?",
            "answer": f"#### {(i % 17 + 2) * (i % 9 + 3)}",
        }
        for i in range(300)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- one case, in a child process ------------------------------------------------------------------------------------
def run_case(case: dict[str, Any], model: Path, data: Path, out: Path) -> dict[str, Any]:
    import torch
    from transformers import TrainerCallback

    from lowvram_r1 import config
    from lowvram_r1.memory import planner as vram
    from lowvram_r1.runs import RunDir
    from lowvram_r1.runs.reader import read_jsonl
    from lowvram_r1.train import engine

    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    total_gb = torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else None
    if cuda and case.get("cap_gb"):
        torch.cuda.set_per_process_memory_fraction(min(1.0, case["cap_gb"] / total_gb))
    overrides = {
        "model": str(model),
        "task": "gsm8k",
        "data_path": str(data),
        "eval_size": 0,
        "max_steps": case["steps"],
        "save_steps": 1000,
        "output_dir": str(out / "run"),
        "backend": case.get("backend", "hf"),
    }
    if "setup" in case:
        overrides.update({**LENGTHS, **SETUPS[case["setup"]]})
    recipe = ROOT / case["recipe"] if "recipe" in case else out / "options.yaml"
    if "recipe" not in case:  # hold out only a few rows of the data file: the rest train
        recipe.write_text("task:\n  options:\n    test_size: 8\n")
    cfg = config.load(recipe, overrides)
    budget = case.get("cap_gb") or total_gb
    plan = vram.plan(cfg, budget) if cuda else vram.plan(cfg, device="cpu")
    rows = {c.name: c.bytes / 2**30 for c in plan.components}
    figures: dict[str, Any] = {
        "planned_gb": round(plan.total_gb, 3),
        "plan_fits": plan.fits,
        "plan_margin_gb": round(rows["safety margin"], 3),
        "plan_cuda_runtime_gb": round(rows.get("CUDA runtime", 0.0), 3),
    }

    class Probe(TrainerCallback):
        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if cuda:
                figures["allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
                figures["reserved_gb"] = round(torch.cuda.max_memory_reserved() / 2**30, 3)
                free, total = torch.cuda.mem_get_info()  # the kit's process is alone on the GPU
                outside = (total - free - torch.cuda.memory_reserved()) / 2**30
                figures["outside_allocator_gb"] = round(outside, 3)
                figures["device_peak_gb"] = round(figures["reserved_gb"] + outside, 3)
                figures["runtime_measured_gb"] = round(figures["device_peak_gb"] - figures["allocated_gb"], 3)
            figures["tokens_per_s"] = generation_speed(kwargs["model"], kwargs["processing_class"], cfg)

    started = time.monotonic()
    try:
        engine.train(cfg, progress=False, callbacks=[Probe()], gpu_memory=f"{budget}GB" if cuda else None, force=True)
        figures["outcome"] = "ran"
    except torch.OutOfMemoryError:
        figures["outcome"] = "out of memory"
    steps = [r for r in read_jsonl(RunDir(out / "run").metrics)[0] if r.get("kind") == "train"]
    timed = [float(r["step_time"]) for r in steps[1:] if r.get("step_time")]
    figures["seconds_per_step"] = round(sum(timed) / len(timed), 2) if timed else None
    figures["wall_seconds"] = round(time.monotonic() - started, 1)
    if not cuda:
        import resource

        figures["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    return figures


def generation_speed(model: Any, tokenizer: Any, cfg: Any, new_tokens: int = 64) -> float:
    """Tokens per second of transformers ``generate`` on one rollout batch, every sequence to full length."""
    import torch

    batch = cfg.training.per_device_train_batch_size
    ids = tokenizer(["Ann packs boxes of apples. How many apples?"] * batch, return_tensors="pt").to(model.device)
    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        model.generate(
            **ids,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=True,
            pad_token_id=tokenizer.pad_token_id,
        )
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    return round(batch * new_tokens / (time.perf_counter() - start), 1)


# -- the parent: cases in turn, then the table ------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for gpu_check.json / gpu_check.md")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--cpu", action="store_true", help="tiny shapes on CPU (what CI runs)")
    mode.add_argument("--unsloth", action="store_true", help="the Unsloth backend beside hf (second command)")
    parser.add_argument("--budget-minutes", type=float, default=8.0, help="stop starting cases after this long")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.child:
        case, model, data, folder = json.loads(args.child)
        sys.stdout.write("RESULT " + json.dumps(run_case(case, Path(model), Path(data), Path(folder))) + "\n")
        return
    cases = cpu_cases() if args.cpu else unsloth_cases() if args.unsloth else gpu_cases()
    work = out / "work"
    work.mkdir(exist_ok=True)
    data = write_data(work / "gsm8k.jsonl")
    deadline = time.monotonic() + 60 * args.budget_minutes
    results = []
    for index, case in enumerate(cases):
        if time.monotonic() > deadline:
            results.append({**case, "outcome": "skipped (time budget)"})
            continue
        model = build_model(case["shape"], work / f"model-{case['shape']}")
        folder = work / f"case-{index}"
        child = [
            sys.executable,
            __file__,
            "--out",
            str(out),
            "--child",
            json.dumps([case, str(model), str(data), str(folder)]),
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run(
            child, capture_output=True, text=True, env=env, timeout=max(60, deadline - time.monotonic() + 120)
        )
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][-200:]  # the exception's own line
        figures = json.loads(line[7:]) if line else {"outcome": f"failed: {last}", "log": done.stderr[-4000:]}
        results.append({**case, **figures})
        print(f"[{index + 1}/{len(cases)}] {describe(case)}: {figures.get('outcome')}", flush=True)
    report = {"device": device_name(), "date": date.today().isoformat(), "commit": commit(), "results": results}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))


def describe(case: dict[str, Any]) -> str:
    what = case.get("setup") or f"{case['recipe']} under {case['cap_gb']} GB"
    return f"{SHAPES.get(case['shape'], case['shape'])} {what}" + (f" [{case['backend']}]" if "backend" in case else "")


def ratio(planned: float | None, measured: float | None) -> str:
    return f"{planned / measured:.2f}" if planned and measured else "–"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"GPU check on {report['device']}, {report['date']}, commit {report['commit']}",
        "",
        "| case | outcome | planned GB | allocated GB | reserved GB | device peak GB | planned / measured "
        "| planned / allocated | CUDA runtime: planned / measured GB | s/step | gen tok/s | plan fits "
        "| verdict right |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        measured = r.get("device_peak_gb") or r.get("peak_rss_gb")
        runtime = f"{r['plan_cuda_runtime_gb']} / {r['runtime_measured_gb']}" if "runtime_measured_gb" in r else "–"
        right = "–"
        if r.get("part") == "verdict" and r.get("outcome") in ("ran", "out of memory"):
            right = "yes" if (r["outcome"] == "ran") == bool(r.get("plan_fits")) else "NO"
        lines.append(
            f"| {describe(r)} | {r.get('outcome')} | {r.get('planned_gb', '–')} | "
            f"{r.get('allocated_gb', '–')} | {r.get('reserved_gb', '–')} | "
            f"{r.get('device_peak_gb', r.get('peak_rss_gb', '–'))} | {ratio(r.get('planned_gb'), measured)} | "
            f"{ratio(r.get('planned_gb'), r.get('allocated_gb'))} | {runtime} | "
            f"{r.get('seconds_per_step', '–')} | {r.get('tokens_per_s', '–')} | {r.get('plan_fits', '–')} | "
            f"{right} |"
        )
    if any("peak_rss_gb" in r for r in report["results"]):
        lines.append(
            "\nCPU mode: measured is the process's peak RSS (the model stack included, in the device peak "
            "column); planned is the CPU plan."
        )
    lines.append(
        "\nDevice peak: max_memory_reserved + the device memory held outside torch's allocator at the end "
        "(CUDA context, library handles). The plan includes a safety margin and an unmeasured CUDA-runtime "
        "allowance (the CUDA runtime column: that allowance against context + reserved - allocated)."
    )
    return "\n".join(lines) + "\n"


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (no CUDA GPU)"


def commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    main()
