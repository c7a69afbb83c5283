"""Multi-GPU and backend combinations on simulated hardware (tests/hardware.py): each works, is switched off with one
log line and planned as such, or is refused before any weights load with what to run instead."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from lowvram_r1 import config
from lowvram_r1.backends import unsloth as unsloth_backend
from lowvram_r1.backends.registry import resolve_backend
from lowvram_r1.cli import main
from lowvram_r1.memory import planner as vram
from lowvram_r1.models.hardware import Hardware
from lowvram_r1.run_plan import resolve
from lowvram_r1.train import combinations
from lowvram_r1.train.combinations import zero_stage
from tests.hardware import PROFILES

ZERO2, ZERO3 = "deepspeed-zero2", "deepspeed-zero3"  # the shipped names, as users type them
TWO_H100 = replace(PROFILES["h100"], gpu_count=2)
MODEL = "Qwen/Qwen2.5-1.5B-Instruct"


@pytest.fixture(autouse=True)
def no_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_ZERO_STAGE"):
        monkeypatch.delenv(name, raising=False)


def settle(cfg: config.RunConfig, processes: int, hardware: Hardware) -> config.RunConfig:
    """``combinations.settle`` on the run ``cfg`` describes, resolved on ``hardware`` with --backend's choice."""
    plan = resolve(cfg, hardware, backend=resolve_backend(cfg, hardware.cuda))
    return combinations.settle(plan, processes).cfg


def cfg_of(**overrides: object) -> config.RunConfig:
    return config.load(None, {"model": MODEL, "backend": "hf", **overrides})


def test_colocated_vllm_on_several_gpus_is_refused_and_points_to_server_mode() -> None:
    with pytest.raises(ValueError, match="GPU 0 .*--vllm-mode server"):
        settle(cfg_of(use_vllm=True), 2, TWO_H100)
    assert settle(cfg_of(use_vllm=True), 1, PROFILES["h100"]).generation.use_vllm  # one GPU: colocated as ever
    assert settle(cfg_of(use_vllm=True), 2, PROFILES["none"]).generation.use_vllm  # CPU processes: one engine each
    server = cfg_of(use_vllm=True, vllm_mode="server", vllm_server_url="http://127.0.0.1:8000")
    assert settle(server, 2, TWO_H100) == server


def test_the_launcher_refuses_it_before_any_process_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from lowvram_r1.cli import launch
    from lowvram_r1.models import hardware

    monkeypatch.setattr(hardware, "detect_hardware", lambda: TWO_H100)
    monkeypatch.setattr(launch.os, "execv", lambda *a: pytest.fail("the launcher must not start"))
    code = main(["train", "--model", MODEL, "--backend", "hf", "--use-vllm", "--num-processes", "2"])
    assert code == 2 and "--vllm-mode server" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["file", "environment"])
def test_vllm_under_zero3_is_refused(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server = {"use_vllm": True, "vllm_mode": "server", "vllm_server_url": "http://127.0.0.1:8000"}
    if where == "file":
        cfg = cfg_of(accelerate_config=ZERO3, **server)
    else:  # a worker under `accelerate launch --config_file deepspeed-zero3.yaml` (what accelerate sets)
        monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
        monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
        cfg = cfg_of(**server)
    with pytest.raises(ValueError, match="ZeRO-3: the adapter handed to vLLM .*deepspeed-zero2"):
        settle(cfg, 2, TWO_H100)
    if where == "file":  # ZeRO-2 keeps whole parameters: allowed
        assert settle(cfg_of(accelerate_config=ZERO2, **server), 2, TWO_H100).generation.use_vllm


def test_zero_stages_are_read_from_the_shipped_files() -> None:
    assert (zero_stage(ZERO2), zero_stage(ZERO3)) == (2, 3)
    assert zero_stage("ddp") is None and zero_stage(None) is None


def test_zero3_refuses_a_prequantised_checkpoint_and_says_it_loads_whole(caplog: pytest.LogCaptureFixture) -> None:
    recipe = "gsm8k/24gb"
    for four_bit in (False, True):
        cfg = config.load(recipe, {"backend": "hf", "load_in_4bit": four_bit, "accelerate_config": ZERO3})
        with pytest.raises(ValueError, match="pre-quantised bitsandbytes checkpoint.*ZeRO-3"):
            settle(cfg, 2, TWO_H100)
    original = config.load(recipe, {"backend": "hf", "model": "Qwen/Qwen2.5-3B-Instruct", "load_in_4bit": False})
    with caplog.at_level(logging.INFO, logger="lowvram_r1"):
        settle(replace(original, run=replace(original.run, accelerate_config=ZERO3)), 2, TWO_H100)
    assert "every process loads the whole model" in caplog.text


def test_a_load_in_4bit_false_flag_on_a_4bit_checkpoint_is_an_error(capsys: pytest.CaptureFixture) -> None:
    recipe = "gsm8k/24gb"
    assert main(["train", "--config", recipe, "--backend", "hf", "--load-in-4bit", "false"]) == 2
    err = capsys.readouterr().err
    assert "--load-in-4bit false cannot be honoured" in err and "Qwen/Qwen2.5-7B-Instruct" in err


def test_search_on_unsloth_turns_vllm_off_with_one_line_and_plans_generate(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(unsloth_backend, "unsloth_installed", lambda: True)
    cfg = config.load(None, {"model": MODEL, "task": "search_r1", "use_vllm": True, "unsloth_standby": True})
    with caplog.at_level(logging.INFO, logger="lowvram_r1"):
        settled = settle(cfg, 1, PROFILES["t4"])
    assert not settled.generation.use_vllm and not settled.model.unsloth_standby
    assert [r.message for r in caplog.records if "--use-vllm off" in r.message] != []
    assert len([r for r in caplog.records if r.name.endswith("combinations")]) == 1
    rows = {c.name for c in vram.plan(settled, PROFILES["t4"].memory_gb).components}
    assert "generation KV cache" in rows and not any(name.startswith("vLLM") for name in rows)
    # the hf backend rolls search episodes out through its own vLLM engine: kept
    assert settle(replace(cfg, model=replace(cfg.model, backend="hf", unsloth_standby=False)), 1, PROFILES["t4"])
    single = config.load(None, {"model": MODEL, "task": "gsm8k", "use_vllm": True})
    assert settle(single, 1, PROFILES["t4"]).generation.use_vllm  # single-turn tasks keep Unsloth's vLLM
