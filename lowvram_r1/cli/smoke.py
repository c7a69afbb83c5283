"""``lowvram-r1 smoke``: the GPU smoke test — 5 GRPO steps of Qwen2.5-0.5B-Instruct with Unsloth + vLLM on GSM8K.

    lowvram-r1 smoke                                    # needs a CUDA GPU, unsloth and vllm (pip install -e '.[gpu]')
    lowvram-r1 smoke --model unsloth/Qwen2.5-0.5B-Instruct --no-4bit --output-dir runs/smoke

It trains through ``engine.train`` like any run, then checks the run directory it wrote:

- some step has reward std > 0 (GRPO had a signal), and every logged step has a non-empty completion;
- the saved adapter's ``lora_B`` is non-zero (peft initialises it to zero, so the LoRA weights changed);
- vLLM generated the rollouts (``sampling/sampling_logp_difference`` is logged only for vLLM samples with the
  importance-sampling correction on, which the engine asks for: Unsloth's own default is off), and after
  training vLLM saw the new adapter: scoring one fixed completion, vLLM with the live LoRA differs from vLLM
  without it, and is closer to the trainer's own log-probabilities than the base model is;

and prints peak GPU memory and seconds per step. Exit code 0 when every check passes, 1 when one fails, 2 when
this machine cannot run it (no GPU, unsloth or vllm missing).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowvram_r1 import config
from lowvram_r1.runs import RunDir

DEFAULT_MODEL = "unsloth/Qwen2.5-0.5B-Instruct-bnb-4bit"
PROBE_FILE = RunDir.SMOKE_PROBE
LOGP_METRIC = "sampling/sampling_logp_difference/mean"
PROBE_QUESTION = (  # GSM8K's first training question: the probe's fixed prompt
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)


def add(subparsers: argparse._SubParsersAction) -> None:
    add_arguments(subparsers.add_parser("smoke", help="GPU smoke test: 5 GRPO steps with Unsloth + vLLM, checked"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model (default {DEFAULT_MODEL})")
    parser.add_argument(
        "--no-4bit",
        dest="load_in_4bit",
        action="store_false",
        help="16-bit LoRA instead of QLoRA (with a 16-bit --model, e.g. unsloth/Qwen2.5-0.5B-Instruct)",
    )
    parser.add_argument("--steps", type=int, default=5, help="GRPO steps (default 5)")
    parser.add_argument("--data-path", help="local GSM8K jsonl/parquet instead of the hub's openai/gsm8k")
    parser.add_argument("--output-dir", default=None, help="run directory (default runs/smoke-<time>)")
    parser.add_argument("--standby", action="store_true", help="also turn on Unsloth's vLLM standby")


def smoke_config(args: argparse.Namespace) -> config.RunConfig:
    """The smoke run: small groups, a learning rate high enough that 5 steps move the adapter measurably."""
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    overrides: dict[str, Any] = {
        "model": args.model,
        "backend": "unsloth",
        "load_in_4bit": args.load_in_4bit,
        "unsloth_standby": args.standby,
        "use_vllm": True,
        "vllm_gpu_memory_utilization": 0.5,
        "task": "gsm8k",
        "data_path": args.data_path,
        "train_size": 64,
        "eval_size": 8,
        "max_steps": args.steps,
        "learning_rate": 2e-4,  # high for GRPO, on purpose: 5 steps must move the adapter beyond kernel noise
        "batch-size": 8,
        "num_generations": 4,
        "max_prompt_length": 320,
        "max_completion_length": 192,
        "save_steps": args.steps,
        "output_dir": args.output_dir,
    }
    return config.load(None, {k: v for k, v in overrides.items() if v is not None})


def refuse_without_gpu() -> None:
    """ValueError (exit 2) naming what is missing on this machine."""
    import torch

    from lowvram_r1.models.hardware import driver_cuda_version

    lacking = [] if torch.cuda.is_available() else ["a CUDA GPU"]
    lacking += [name for name in ("unsloth", "vllm") if importlib.util.find_spec(name) is None]
    if lacking:
        raise ValueError(missing_advice(lacking, driver_cuda_version()))


def missing_advice(lacking: list[str], driver: tuple[int, int] | None) -> str:
    """What to do when ``lacking`` is missing, for this NVIDIA driver (a pure function: tests pass simulated ones).

    On a CUDA 12 driver the ``gpu`` extra is never the answer: its torch (CUDA 13) sees no GPU there and its vLLM
    does not load. The smoke test checks vLLM rollouts, so it needs a CUDA 13 driver; the CUDA 12 set trains without.
    """
    from lowvram_r1.models.hardware import CU129_TORCH, TORCH_CUDA

    needs = f"the GPU smoke test needs {', '.join(lacking)}"
    if driver is not None and driver < TORCH_CUDA:
        commands = f"pip install --force-reinstall {' '.join(CU129_TORCH)} && pip install -e '.[unsloth]'"
        return (
            f"{needs}, and this NVIDIA driver speaks only CUDA {driver[0]}.{driver[1]}: the smoke test checks vLLM "
            f"rollouts, which need a CUDA {TORCH_CUDA[0]}.{TORCH_CUDA[1]} driver (>= 580); update the driver, then "
            "pip install torch==2.13.0 && pip install -e '.[gpu]'. Without a driver update, train without --use-vllm "
            f"after: {commands} (lowvram-r1 doctor checks the set-up)"
        )
    return f"{needs}: run it on a CUDA machine after pip install -e '.[gpu]' (lowvram-r1 doctor checks the set-up)"


def _token_logps(logits: Any, ids: list[int], start: int) -> list[float]:
    import torch

    logps = torch.log_softmax(logits.float(), dim=-1)
    return [float(logps[i - 1, ids[i]]) for i in range(start, len(ids))]


def probe_vllm(model: Any, tokenizer: Any, question: str, max_tokens: int = 48) -> dict[str, Any]:
    """Score one fixed completion three ways: vLLM without the adapter, vLLM with the live adapter (what rollouts
    get, through Unsloth's ``load_lora``), and the trainer's model itself."""
    import torch
    from vllm import SamplingParams

    from lowvram_r1.rollout.vllm_engine import prompt_token_logprobs, wake

    llm = model.vllm_engine
    wake(llm)
    messages = [{"role": "user", "content": question}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    greedy = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    completion = list(llm.generate([{"prompt_token_ids": prompt_ids}], greedy, use_tqdm=False)[0].outputs[0].token_ids)
    ids = prompt_ids + completion
    base = prompt_token_logprobs(llm, prompt_ids, completion, None)
    tuned = prompt_token_logprobs(llm, prompt_ids, completion, model.load_lora("lowvram_r1_smoke", load_tensors=True))
    os.environ["UNSLOTH_RETURN_LOGITS"] = "1"  # Unsloth skips materialising logits in training mode otherwise
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0]
    trainer = _token_logps(logits, ids, len(prompt_ids))
    return {"completion_tokens": len(completion), "vllm_base": base, "vllm_adapter": tuned, "trainer": trainer}


def make_probe_callback(question: str) -> Any:
    """A TrainerCallback that probes vLLM at the end of training and writes the result into the run directory."""
    import torch
    from transformers import TrainerCallback

    class Probe(TrainerCallback):
        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            model, tokenizer = kwargs["model"], kwargs["processing_class"]
            result = probe_vllm(model, tokenizer, question)
            free, total = torch.cuda.mem_get_info()
            result.update(
                torch_peak_gib=torch.cuda.max_memory_allocated() / 2**30,
                gpu_used_gib=(total - free) / 2**30,  # vLLM's pool included (it is not torch's allocator)
                gpu_name=torch.cuda.get_device_name(0),
            )
            Path(args.output_dir).parent.joinpath(PROBE_FILE).write_text(json.dumps(result))

    return Probe()


@dataclass
class SmokeReport:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    figures: dict[str, float | str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def lines(self) -> list[str]:
        out = [f"{'PASS' if ok else 'FAIL'}  {name}: {detail}" for name, ok, detail in self.checks]
        out += [f"      {k}: {v:.2f}" if isinstance(v, float) else f"      {k}: {v}" for k, v in self.figures.items()]
        return out


def _mean_abs(a: list[float], b: list[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / max(1, len(a))


def lora_b_max(adapter: Path) -> float | None:
    file = adapter / "adapter_model.safetensors"
    if not file.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as tensors:
        values = [float(tensors.get_tensor(k).abs().max()) for k in tensors.keys() if "lora_B" in k]
    return max(values) if values else None


def check_run(run_dir: Path) -> SmokeReport:
    """Read the run directory the smoke run wrote and judge it (no GPU needed: tests feed it a made-up one)."""
    from lowvram_r1.runs.reader import read_jsonl

    run, report = RunDir(run_dir), SmokeReport()
    steps = [r for r in read_jsonl(run.metrics)[0] if r.get("kind") == "train"]
    stds = [float(r.get("reward_std") or 0.0) for r in steps]
    report.checks.append(("reward std > 0 on some step", any(s > 0 for s in stds), f"per step {stds}"))
    completions = read_jsonl(run.completions)[0]
    by_step: dict[int, list[str]] = {}
    for c in completions:
        by_step.setdefault(c["step"], []).append(str(c.get("completion") or ""))
    empty_steps = [s for s in sorted({r["step"] for r in steps}) if not any(t.strip() for t in by_step.get(s, []))]
    report.checks.append(
        (
            "non-empty completions",
            bool(steps) and not empty_steps,
            f"{sum(bool(t.strip()) for t in sum(by_step.values(), []))}/{len(completions)} non-empty; "
            f"steps without any: {empty_steps}",
        )
    )
    b_max = lora_b_max(run.adapter)
    report.checks.append(("LoRA weights changed", bool(b_max), f"max |lora_B| = {b_max} (peft starts it at exactly 0)"))
    through_vllm = bool(steps) and all(LOGP_METRIC in r for r in steps)
    report.checks.append(
        (
            "rollouts generated by vLLM",
            through_vllm,
            f"{LOGP_METRIC} per step: {[round(float(r.get(LOGP_METRIC, float('nan'))), 4) for r in steps]}",
        )
    )
    probe_file = run.path / PROBE_FILE
    probe = json.loads(probe_file.read_text()) if probe_file.is_file() else None
    if probe is None:
        report.checks.append(("vLLM saw the new adapter", False, f"{PROBE_FILE} missing: the probe did not run"))
    else:
        shift = max((abs(a - b) for a, b in zip(probe["vllm_adapter"], probe["vllm_base"], strict=True)), default=0)
        to_trainer = _mean_abs(probe["vllm_adapter"], probe["trainer"])
        base_to_trainer = _mean_abs(probe["vllm_base"], probe["trainer"])
        report.checks.append(
            (
                "vLLM saw the new adapter",
                shift > 1e-4 and to_trainer < base_to_trainer,
                f"max logp shift from the adapter {shift:.4f}; mean |vLLM - trainer| with adapter {to_trainer:.4f}, "
                f"without {base_to_trainer:.4f}",
            )
        )
        # vLLM's KV cache is allocated through torch too: this peak is training and the KV cache together
        report.figures["peak GPU memory through torch, vLLM's KV cache included (GiB)"] = float(probe["torch_peak_gib"])
        report.figures["GPU memory in use at the end, vLLM included (GiB)"] = float(probe["gpu_used_gib"])
        report.figures["gpu"] = str(probe.get("gpu_name", "?"))
    timed = [float(r["step_time"]) for r in steps[1:] if r.get("step_time")]  # step 1 includes compilation
    if timed:
        report.figures["seconds per step (after the first)"] = sum(timed) / len(timed)
    return report


def run_smoke(args: argparse.Namespace) -> SmokeReport:
    """Train, then check the run directory; :func:`run` prints the report."""
    cfg = smoke_config(args)
    refuse_without_gpu()
    from lowvram_r1.backends.unsloth import import_unsloth

    import_unsloth(cfg.model.unsloth_standby)  # before the probe callback imports transformers
    from lowvram_r1.train import engine

    summary = engine.train(cfg, callbacks=[make_probe_callback(PROBE_QUESTION)])
    return check_run(Path(summary["run_dir"]))


def run(args: argparse.Namespace) -> int:
    report = run_smoke(args)
    print("\n".join(report.lines()))
    print("smoke test passed" if report.passed else "smoke test FAILED")
    return 0 if report.passed else 1
