"""One case of the GPU check kit, in a process of its own (``bench/gpu_check.py`` starts it; not run by hand).

    python bench/gpu_check_case.py build SHAPE FOLDER          # a random-weight model folder (GPU when there is one)
    python bench/gpu_check_case.py run CASE_JSON MODEL DATA FOLDER   # train it; prints "RESULT {...}"

Each case runs in a fresh process, so its peaks are its own: the kit's parent never touches the GPU (it imports no
torch), and models are built by a ``build`` process that exits before any case starts. A case trains through
``engine.train``, the path ``lowvram-r1 train`` takes, and in that order: with the Unsloth backend, ``unsloth`` is
imported before transformers / trl / peft (the backend's import-order guard refuses anything else). The process asks
Linux to end it when the kit's parent dies, so a killed kit leaves no case training.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETUPS = {  # name -> config overrides
    "LoRA bf16 + ckpt": {"dtype": "bfloat16"},
    "QLoRA nf4 + ckpt": {"dtype": "bfloat16", "load_in_4bit": True},
    "QLoRA nf4 + offload": {"dtype": "bfloat16", "load_in_4bit": True, "gradient_checkpointing": "offload"},
    "fp16 (T4 path)": {"dtype": "float16", "load_in_4bit": True},
    "LoRA fp32 + ckpt": {},  # CPU mode
    "QLoRA nf4 + ckpt (CPU)": {"load_in_4bit": True},
}
LENGTHS = {"max_prompt_length": 320, "max_completion_length": 256, "batch-size": 8, "num_generations": 8}
SEARCH_OPTIONS = "task:\n  options:\n    world_people: 200\n    hops: '1'\n    test_size: 8\n"
TINY = dict(
    hidden_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=64,
    intermediate_size=256,
    vocab_size=512,
    tie_word_embeddings=True,
)


def build_model(shape: str, folder: Path) -> Path:
    """A random-weight model folder of ``shape`` (the planner's table, or ``tiny``) with the tiny model's byte-level
    tokenizer (tokens it emits fit any vocabulary). Built on the GPU when there is one (fast), in this process only."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from lowvram_r1.models.shapes import TABLE
    from lowvram_r1.models.tiny import ensure_tiny_tokenizer, spec_for

    a = TABLE.get(shape)
    sizes = a.config_fields() if a else TINY
    tokenizer = AutoTokenizer.from_pretrained(ensure_tiny_tokenizer(spec_for("countdown")))
    config = Qwen2Config(
        **sizes,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    with torch.device("cuda" if cuda else "cpu"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16 if cuda else torch.float32)
    partial = folder.with_name(folder.name + ".partial")  # a killed build leaves no folder that looks complete
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(folder)
    return folder


def import_backend_first(backend: str) -> None:
    """What ``lowvram-r1 train`` does before anything imports transformers: the Unsloth backend imports unsloth
    first (with the variables it reads at import). Nothing for hf."""
    if backend == "unsloth":
        from lowvram_r1.backends.unsloth import import_unsloth
        from lowvram_r1.models.hardware import detect_hardware

        import_unsloth(False, hardware=detect_hardware())


def case_overrides(case: dict[str, Any], model: Path, data: Path, out: Path) -> dict[str, Any]:
    """The config flags of one case (the recipe, when it has one, comes under them)."""
    overrides: dict[str, Any] = {
        "model": str(model),
        "task": case.get("task", "gsm8k"),
        "eval_size": 0,
        "max_steps": case["steps"],
        "save_steps": 1000,
        "output_dir": str(out / "run"),
        "backend": case.get("backend", "hf"),
    }
    if overrides["task"] == "gsm8k":
        overrides["data_path"] = str(data)
    if "setup" in case:
        overrides.update({**LENGTHS, **SETUPS[case["setup"]]})
    if case.get("server"):
        overrides.update(use_vllm=True, vllm_mode="server", vllm_gpu_memory_utilization=0.25)
    return overrides


def start_server(cfg: Any, model: Path, folder: Path) -> subprocess.Popen:
    """vLLM's OpenAI server for this case on a free loopback port (the command ``train`` prints for it)."""
    import socket

    from lowvram_r1.models.hardware import detect_hardware
    from lowvram_r1.rollout import check_vllm_quantization, vllm_settings
    from lowvram_r1.rollout.vllm_server import server_command

    hardware = detect_hardware()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings = vllm_settings(cfg, str(model), hardware, check_vllm_quantization(cfg, str(model)))
    words = shlex.split(server_command(settings, url, cuda=hardware.cuda))
    name, value = words[0].split("=", 1)
    command = [sys.executable, "-m", "vllm.entrypoints.cli.main", *words[2:]] if hardware.cuda else words[1:]
    if command[0] == "python":
        command[0] = sys.executable
    command += ["--gpu-memory-utilization", str(settings.gpu_memory_utilization)]  # it shares the GPU with training
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(command, env={**os.environ, name: value}, stdout=log, stderr=subprocess.STDOUT)
    os.environ["LOWVRAM_R1_GPU_CHECK_SERVER"] = url
    return server


def run_case(case: dict[str, Any], model: Path, data: Path, out: Path) -> dict[str, Any]:
    import_backend_first(case.get("backend", "hf"))
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
    overrides = case_overrides(case, model, data, out)
    recipe = case["recipe"] if "recipe" in case else out / "options.yaml"
    if "recipe" not in case:  # hold out only a few rows of the data: the rest train
        recipe.write_text(SEARCH_OPTIONS if case.get("task") else "task:\n  options:\n    test_size: 8\n")
    cfg = config.load(recipe, overrides)
    server = None
    if case.get("server"):
        server = start_server(cfg, model, out)
        cfg = config.load(recipe, {**overrides, "vllm_server_url": os.environ["LOWVRAM_R1_GPU_CHECK_SERVER"]})
    budget = case.get("cap_gb") or total_gb
    plan = vram.plan(cfg, budget) if cuda else vram.plan(cfg, device="cpu")
    rows = {c.name: c.bytes / 2**30 for c in plan.components}
    figures: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if cuda else "CPU (no CUDA GPU)",
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
                free, total = torch.cuda.mem_get_info()  # device-wide: a vLLM server's share counts here too
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
    finally:
        if server is not None:
            server.terminate()
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
        pad = tokenizer.pad_token_id
        model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True, pad_token_id=pad)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    return round(batch * new_tokens / (time.perf_counter() - start), 1)


def main(argv: list[str]) -> int:
    from lowvram_r1.train.distributed import die_with_launcher

    die_with_launcher()  # the kit's parent gone (killed): this case goes too
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if argv[0] == "build":
        build_model(argv[1], Path(argv[2]))
        return 0
    case = json.loads(argv[1])
    if case.get("stall"):  # rehearsal only: a case that overruns its time
        time.sleep(10**6)
    figures = run_case(case, Path(argv[2]), Path(argv[3]), Path(argv[4]))
    sys.stdout.write("RESULT " + json.dumps(figures) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
