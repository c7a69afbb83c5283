"""The hardware description and every fact read off it, as pure functions of that description.

    hw = detect_hardware()                  # torch's view of the first CUDA GPU (or "cpu")
    native_bf16((7, 5))                     # False: a T4 emulates bf16, it does not have it
    unsloth_environment(hw, standby=False)  # what must be in os.environ before `import unsloth`
    driver_cuda_version()                   # "12.4" from nvidia-smi, without creating a CUDA context
    gpus_without_context()                  # [("NVIDIA GeForce RTX 4090", 23.99)]: nvidia-smi's list, no context

Tests run these against simulated cards (tests/hardware.py): a T4, an 8 GB laptop card, a 4090, an H100, none.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lowvram_r1.config import RunConfig

# torch 2.13's wheels on PyPI are CUDA 13.0 builds, which need a driver that speaks CUDA 13.0 (driver >= 580).
TORCH_CUDA = (13, 0)
CU129_INDEX = "https://download.pytorch.org/whl/cu129"  # torch 2.13 builds for CUDA 12.9 drivers
# unsloth requires torchvision: installed after a CUDA 12.9 torch, pip would take PyPI's (a CUDA 13 build, which breaks
# `import unsloth`). torchvision 0.28 is torch 2.13's, taken from the same index in the same command.
CU129_TORCH = ("torch==2.13.0", "torchvision==0.28.0", "--index-url", CU129_INDEX)


@dataclass(frozen=True)
class Hardware:
    cuda: bool
    name: str
    memory_gb: float
    bf16: bool  # native bf16 (compute capability >= 8.0), never torch's emulated answer
    compute_capability: tuple[int, int] | None = None
    gpu_count: int = 1  # CUDA GPUs torch sees (the description is the first's); 0 without CUDA


def native_bf16(compute_capability: tuple[int, int] | None) -> bool:
    """bf16 in hardware: Ampere (8.0) and newer. ``torch.cuda.is_bf16_supported()`` says True on a T4 too (torch
    2.13 counts emulation by default); Unsloth then loads float16 there and vLLM refuses bf16 below 8.0."""
    return compute_capability is not None and compute_capability >= (8, 0)


def detect_hardware() -> Hardware:
    import torch

    if not torch.cuda.is_available():
        return Hardware(cuda=False, name="cpu", memory_gb=0.0, bf16=False, gpu_count=0)
    props = torch.cuda.get_device_properties(0)
    capability = (props.major, props.minor)
    return Hardware(
        cuda=True,
        name=props.name,
        memory_gb=props.total_memory / 2**30,
        bf16=native_bf16(capability),
        compute_capability=capability,
        gpu_count=torch.cuda.device_count(),
    )


def unsloth_environment(hardware: Hardware, standby: bool) -> dict[str, str]:
    """Variables Unsloth reads while it is imported, so they are set before ``import unsloth``.

    - ``UNSLOTH_VLLM_STANDBY``: vLLM standby (read only at import).
    - ``UNSLOTH_VLLM_NO_FLASHINFER=1`` below compute capability 8.0: unsloth_zoo 2026.10.9 sets
      ``VLLM_USE_FLASHINFER_SAMPLER=1`` there for vLLM >= 0.11 when nvcc/ninja exist (as on Colab), and vLLM 0.32's
      FlashInfer sampler needs 8.0 and raises when that variable is set explicitly. Setting the vLLM variable to 0
      does not help: Unsloth overwrites it; its own switch is honoured.
    """
    env = {"UNSLOTH_VLLM_STANDBY": "1" if standby else "0"}
    capability = hardware.compute_capability
    if hardware.cuda and capability is not None and capability < (8, 0):
        env["UNSLOTH_VLLM_NO_FLASHINFER"] = "1"
    return env


def _nvidia_smi(*args: str) -> str | None:
    """nvidia-smi's output, or None without a driver (or when it does not answer)."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    try:
        return subprocess.run([binary, *args], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def driver_cuda_version(nvidia_smi_output: str | None = None) -> tuple[int, int] | None:
    """The CUDA version the NVIDIA driver speaks (nvidia-smi's header), or None without a driver.

    Read from nvidia-smi, not torch: it creates no CUDA context and works when torch's build and the driver disagree
    (then ``torch.cuda.is_available()`` is just False).
    """
    if nvidia_smi_output is None:
        nvidia_smi_output = _nvidia_smi()
    match = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", nvidia_smi_output or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def gpus_without_context(nvidia_smi_csv: str | None = None) -> list[tuple[str, float]]:
    """(name, total memory in GiB) of each NVIDIA GPU, from ``nvidia-smi --query-gpu=name,memory.total``; [] without
    a driver (or when nvidia-smi does not answer). The one reader of nvidia-smi's GPU list.

    For processes that must not hold a CUDA context (the notebook kernel, the panel, the GPU kit's parent: every MB
    they took would be missing from the training child process the plan was made for).
    """
    if nvidia_smi_csv is None:
        nvidia_smi_csv = _nvidia_smi("--query-gpu=name,memory.total", "--format=csv,noheader,nounits")
    gpus = []
    for line in (nvidia_smi_csv or "").strip().splitlines():
        name, _, mib = line.rpartition(",")
        try:
            gpus.append((name.strip(), float(mib) / 1024))  # MiB
        except ValueError:
            return []
    return gpus


def gpu_memory_without_context(nvidia_smi_csv: str | None = None) -> float | None:
    """Total memory of the first GPU in GiB (:func:`gpus_without_context`), or None without one."""
    gpus = gpus_without_context(nvidia_smi_csv)
    return gpus[0][1] if gpus else None


def driver_mismatch(driver: tuple[int, int] | None, torch_cuda: str | None, cuda_available: bool) -> str | None:
    """What is wrong when a driver exists but torch cannot use it, with the commands that fix it; else None."""
    if driver is None or cuda_available:
        return None
    if torch_cuda is None:
        return (
            "this machine has an NVIDIA driver (nvidia-smi) but torch is a CPU build: "
            "pip install --force-reinstall torch==2.13.0 (the CUDA build from PyPI), then pip install -e '.[gpu]'"
        )
    built = tuple(int(part) for part in torch_cuda.split(".")[:2])
    if driver < built:
        return (
            f"the NVIDIA driver speaks CUDA {driver[0]}.{driver[1]} but torch is built for CUDA {torch_cuda}, so "
            f"torch sees no GPU. Either update the driver to one for CUDA {built[0]}.{built[1]} (>= 580 for 13.0), "
            f"or install torch's CUDA 12.9 build with its torchvision: pip install --force-reinstall "
            f"{' '.join(CU129_TORCH)}, then pip install -e '.[unsloth]' (not '.[gpu]': vllm "
            "0.32 is linked against CUDA 13 and will not load then: train without --use-vllm (Unsloth's own "
            "generation, slower), and pip uninstall -y vllm if it is installed)"
        )
    return f"an NVIDIA driver (CUDA {driver[0]}.{driver[1]}) is present but torch sees no GPU: read nvidia-smi's output"


@dataclass(frozen=True)
class InstallPlan:
    """What to pip install on a machine with this driver, and whether vLLM rollouts will work there."""

    commands: tuple[tuple[str, ...], ...]  # pip argument lists, run in order
    use_vllm: bool
    why: str


def install_plan(driver: tuple[int, int] | None, extras: str = "notebook") -> InstallPlan:
    """The package set that runs on this NVIDIA driver (the Colab notebook's install cell uses it; it imports
    from the cloned folder before anything is installed, so this stays dependency-free).

    - a CUDA 13 driver: PyPI's torch 2.13 (CUDA 13.0) with the ``gpu`` extra, vLLM included;
    - a CUDA 12.x driver: torch 2.13's CUDA 12.9 build from PyTorch's index and Unsloth without vLLM (vLLM 0.32 is
      linked against CUDA 13 and no build of it matches CUDA 12.9 torch 2.13): rollouts use Unsloth's generation;
    - no driver: the CPU set (the tiny model only).
    """
    if driver is None:
        return InstallPlan(((f".[{extras}]",),), False, "no NVIDIA driver: the CPU set (the built-in tiny model)")
    if driver >= TORCH_CUDA:
        return InstallPlan(
            (("torch==2.13.0",), (f".[gpu,{extras}]",)),
            True,
            f"driver speaks CUDA {driver[0]}.{driver[1]}: torch 2.13 (CUDA 13.0), Unsloth and vLLM",
        )
    return InstallPlan(
        (CU129_TORCH, (f".[unsloth,{extras}]",)),  # torchvision from the same index, before unsloth asks for one
        False,
        f"driver speaks CUDA {driver[0]}.{driver[1]} only (torch 2.13 on PyPI needs 13.0): torch 2.13's CUDA 12.9 "
        "build and Unsloth without vLLM (no vLLM 0.32 build runs on CUDA 12.9): rollouts through Unsloth's own "
        "generation, slower",
    )


def check_hardware_options(cfg: RunConfig, hardware: Hardware) -> None:
    """Refuse options this machine cannot run (a GPU-only option without CUDA, bf16 on a card without native
    bf16), saying what to use instead."""
    if hardware.cuda:
        if cfg.model.dtype == "bfloat16" and not hardware.bf16:
            raise ValueError(
                f"{hardware.name} (compute capability {'.'.join(map(str, hardware.compute_capability or ()))}) has "
                "no native bf16 (vLLM and Unsloth refuse it below 8.0): use --dtype auto (float16) or --dtype float16"
            )
        return
    gpu_only = {
        "backend unsloth": cfg.model.backend == "unsloth",
        "unsloth-standby": cfg.model.unsloth_standby,
        f"optim {cfg.training.optim}": cfg.training.optim.endswith("8bit"),
        "dtype float16": cfg.model.dtype == "float16",
    }
    wrong = [name for name, used in gpu_only.items() if used]
    if wrong:
        raise ValueError(
            f"no CUDA GPU found, but {', '.join(wrong)} needs one: use --backend hf (or auto), "
            "--optim adamw_torch and --dtype auto on CPU, without --unsloth-standby"
        )


def torch_dtype(cfg: RunConfig, hardware: Hardware) -> Any:
    import torch

    if cfg.model.dtype != "auto":
        return getattr(torch, cfg.model.dtype)
    return torch.bfloat16 if hardware.cuda and hardware.bf16 else torch.float16 if hardware.cuda else torch.float32


def mixed_precision(cfg: RunConfig, hardware: Hardware) -> dict[str, bool]:
    """``TrainingArguments``' ``bf16`` / ``fp16`` autocast flags, following the model's dtype.

    A float16 model gets float16 autocast even on a bfloat16 card: Unsloth's trainer refuses a float16 model with
    ``bf16=True`` ("Model is in float16 precision but you want to use bfloat16"), and mixing them is never meant.
    """
    if not hardware.cuda:
        return {"bf16": False, "fp16": False}
    dtype = str(torch_dtype(cfg, hardware)).removeprefix("torch.")
    return {"bf16": dtype == "bfloat16" or (dtype == "float32" and hardware.bf16), "fp16": dtype == "float16"}
