"""Unsloth backend, what runs without a GPU: backend choice, the keyword dicts, the import-order and standby
guards, and that nothing but the backend imports unsloth."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.backends import unsloth as unsloth_backend
from lowvram_r1.backends.registry import resolve_backend
from lowvram_r1.models.hardware import Hardware, check_hardware_options
from tests.paths import PACKAGE


@pytest.mark.parametrize(
    ("overrides", "cuda", "installed", "expected"),
    [
        ({"model": "Qwen/Qwen2.5-1.5B-Instruct"}, True, True, "unsloth"),
        ({"model": "Qwen/Qwen2.5-1.5B-Instruct"}, True, False, "hf"),
        ({"model": "Qwen/Qwen2.5-1.5B-Instruct"}, False, True, "hf"),
        ({"model": "tiny"}, True, True, "hf"),
        ({"model": "Qwen/Qwen2.5-1.5B-Instruct", "backend": "hf"}, True, True, "hf"),
        ({"model": "tiny", "backend": "unsloth"}, True, False, "unsloth"),  # asked for: the load then says why not
    ],
)
def test_auto_picks_unsloth_only_with_a_gpu_and_unsloth(
    monkeypatch: pytest.MonkeyPatch, overrides: dict, cuda: bool, installed: bool, expected: str
) -> None:
    monkeypatch.setattr(unsloth_backend, "unsloth_installed", lambda: installed)
    backend, reason = resolve_backend(config.load(None, overrides), cuda)
    assert backend == expected and reason


def test_keyword_dicts_follow_the_config() -> None:
    cfg = config.load(
        None,
        {
            "model": "m",
            "use_vllm": True,
            "load_in_4bit": True,
            "lora-r": 8,
            "lora-alpha": 16,
            "vllm_gpu_memory_utilization": 0.6,
            "max_prompt_length": 300,
            "seed": 7,
        },
    )
    kwargs = unsloth_backend.from_pretrained_kwargs(cfg, "unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit")
    assert kwargs["model_name"] == "unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit"
    assert kwargs["max_seq_length"] == 300 + cfg.generation.max_completion_length
    assert (kwargs["fast_inference"], kwargs["gpu_memory_utilization"], kwargs["max_lora_rank"]) == (True, 0.6, 8)
    assert kwargs["load_in_4bit"] is True and kwargs["dtype"] is None and kwargs["random_state"] == 7
    peft = unsloth_backend.peft_kwargs(cfg)
    assert peft["target_modules"] == list(unsloth_backend.ALL_LINEAR)
    assert (peft["r"], peft["lora_alpha"], peft["use_gradient_checkpointing"]) == (8, 16, "unsloth")
    prequantized = config.load(None, {"model": "unsloth/Qwen2.5-0.5B-Instruct-bnb-4bit"})  # --load-in-4bit not given
    assert unsloth_backend.from_pretrained_kwargs(prequantized, prequantized.model.name)["load_in_4bit"] is True
    plain = config.load(None, {"model": "m", "gradient_checkpointing": False, "lora-target-modules": "q_proj, v_proj"})
    assert unsloth_backend.from_pretrained_kwargs(plain, "m")["load_in_4bit"] is False
    assert "gpu_memory_utilization" not in unsloth_backend.from_pretrained_kwargs(plain, "m")
    assert unsloth_backend.peft_kwargs(plain)["use_gradient_checkpointing"] is False
    offloaded = config.load(None, {"model": "m", "gradient_checkpointing": "offload"})
    assert unsloth_backend.peft_kwargs(offloaded)["use_gradient_checkpointing"] == "unsloth"  # Unsloth's own mode
    assert unsloth_backend.peft_kwargs(plain)["target_modules"] == ["q_proj", "v_proj"]


def test_refuses_when_transformers_came_first() -> None:
    code = (
        "import os, transformers\n"
        "from lowvram_r1.backends.unsloth import import_unsloth\n"
        "try:\n    import_unsloth(True)\nexcept RuntimeError as e:\n    print('refused:', e)\n"
        "print('env', os.environ.get('UNSLOTH_VLLM_STANDBY'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stdout
    assert "refused: transformers was imported before unsloth" in out and "--backend hf" in out
    assert "env None" in out  # nothing half-done


def test_standby_is_set_before_unsloth_is_imported() -> None:
    code = (
        "import os, sys\n"
        "from lowvram_r1.backends.unsloth import import_unsloth\n"
        "try:\n    import_unsloth(True)\nexcept ImportError:\n    pass\n"  # unsloth is not installed here
        "print('env', os.environ.get('UNSLOTH_VLLM_STANDBY'), [m for m in ('transformers', 'trl', 'peft') "
        "if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "env 1 []" in result.stdout, result.stderr


def test_standby_cannot_change_after_unsloth_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "unsloth", object())
    monkeypatch.setenv(unsloth_backend.STANDBY_ENV, "0")
    with pytest.raises(RuntimeError, match="reads it only at import. Start a new Python process"):
        unsloth_backend.import_unsloth(standby=True)


def test_only_the_backend_imports_unsloth() -> None:
    importers = []
    for file in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "unsloth" or n.startswith("unsloth.") for n in names):
                importers.append(file.relative_to(PACKAGE).as_posix())
    assert sorted(set(importers)) == ["backends/unsloth.py"]


def test_standby_options_are_checked_before_loading() -> None:
    with pytest.raises(ValueError, match="Unsloth option"):
        config.load(None, {"unsloth_standby": True, "use_vllm": True, "backend": "hf"})
    with pytest.raises(ValueError, match="add --use-vllm"):
        config.load(None, {"unsloth_standby": True})
    cfg = config.load(None, {"unsloth_standby": True, "use_vllm": True, "model": "m"})
    with pytest.raises(ValueError, match="no CUDA GPU found, but unsloth-standby needs one"):
        check_hardware_options(cfg, Hardware(cuda=False, name="cpu", memory_gb=0.0, bf16=False))


def test_the_t4_recipe_loads_and_uses_unsloth_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config.load("gsm8k/t4-unsloth-16gb")
    assert cfg.model.name.startswith("unsloth/") and cfg.model.name.endswith("-bnb-4bit")
    monkeypatch.setattr(unsloth_backend, "unsloth_installed", lambda: True)
    assert resolve_backend(cfg, cuda=True)[0] == "unsloth"
    assert unsloth_backend.from_pretrained_kwargs(cfg, cfg.model.name)["fast_inference"] is True
    with pytest.raises(ValueError, match="no CUDA GPU found"):  # adamw_8bit: refused on CPU, before loading
        check_hardware_options(cfg, Hardware(cuda=False, name="cpu", memory_gb=0.0, bf16=False))


@pytest.mark.parametrize(
    "extra",
    [[], ["--overlong-buffer", "8"], ["--reward", "think_format_reward=0.1"]],  # rewards that come from trl.rewards
    ids=["plain", "shaping", "trl-reward"],
)
def test_train_reaches_unsloth_before_transformers_trl_or_peft(tmp_path: Path, extra: list[str]) -> None:
    """The real CLI + engine path on a pretend GPU machine: when the unsloth import comes, none of the libraries
    it patches may be loaded yet (the CLI's progress-bar setup and the engine's validation included)."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"max_position_embeddings": 2048}')
    data = tmp_path / "gsm8k.jsonl"
    data.write_text('{"question": "1 + 1?", "answer": "#### 2"}\n' * 210)  # 200 are held out
    code = f"""
import sys
from lowvram_r1.backends import unsloth as unsloth_backend
from lowvram_r1.models import hardware
hardware.detect_hardware = lambda: hardware.Hardware(cuda=True, name="pretend", memory_gb=16.0, bf16=False)
unsloth_backend.unsloth_installed = lambda: True
def fake_import(standby, strict=True, hardware=None):
    raise ValueError("early: " + repr([m for m in ("transformers", "trl", "peft") if m in sys.modules]))
unsloth_backend.import_unsloth = fake_import
from lowvram_r1.cli import main
sys.exit(main(["train", "--task", "gsm8k", "--data-path", "{data}", "--model", "{tmp_path / "model"}",
               "--eval-size", "0", "--output-dir", "{tmp_path / "run"}", *{extra!r}]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "early: []" in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("dtype", "bf16_card", "expected"),
    [
        ("auto", True, {"bf16": True, "fp16": False}),
        ("auto", False, {"bf16": False, "fp16": True}),  # T4: float16 model, float16 autocast
        ("float16", True, {"bf16": False, "fp16": True}),  # Unsloth raises on a float16 model with bf16=True
        ("bfloat16", True, {"bf16": True, "fp16": False}),
        ("float32", True, {"bf16": True, "fp16": False}),
    ],
)
def test_autocast_follows_the_model_dtype(dtype: str, bf16_card: bool, expected: dict) -> None:
    from lowvram_r1.models.hardware import Hardware, mixed_precision

    cfg = config.load(None, {"model": "m", "dtype": dtype})
    assert mixed_precision(cfg, Hardware(cuda=True, name="gpu", memory_gb=16.0, bf16=bf16_card)) == expected
    assert mixed_precision(cfg, Hardware(cuda=False, name="cpu", memory_gb=0.0, bf16=False)) == {
        "bf16": False,
        "fp16": False,
    }


def test_no_flashinfer_is_set_when_unsloth_was_imported_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook that imports unsloth first (as Unsloth advises) on a T4 still gets UNSLOTH_VLLM_NO_FLASHINFER:
    unsloth_zoo 2026.10.9 reads it at each ``load_vllm``, not only at import."""
    from types import SimpleNamespace

    from tests.hardware import PROFILES

    monkeypatch.setitem(sys.modules, "unsloth", SimpleNamespace(FastLanguageModel="fast"))
    monkeypatch.setenv(unsloth_backend.STANDBY_ENV, "0")
    monkeypatch.delenv("UNSLOTH_VLLM_NO_FLASHINFER", raising=False)
    assert unsloth_backend.import_unsloth(standby=False, hardware=PROFILES["t4"]) == "fast"
    assert os.environ.get("UNSLOTH_VLLM_NO_FLASHINFER") == "1"
