"""One pre-flight for every stage (:mod:`lowvram_r1.train.stage`): cold-start SFT refuses what GRPO refuses, before
any weights load. Each bad input runs through both stages; the hf backend's ``load`` is replaced by one that fails
the test, so a refusal that comes after loading (or none) is caught."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lowvram_r1.backends.hf import HfBackend
from lowvram_r1.pipeline.sft import train_sft
from lowvram_r1.train import engine
from tests.hardware import PROFILES
from tests.train.test_train import small_config

STAGES = ("grpo", "sft")


@pytest.fixture(autouse=True)
def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("weights loaded: the pre-flight let this input through")

    monkeypatch.setattr(HfBackend, "load", load)


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Countdown task rows with a reference completion: SFT's data."""
    from lowvram_r1.tasks import Split, get_task
    from tests.conftest import DEMO_OPTIONS

    task = get_task("countdown")
    rows = task.build_rows(Split("train", 8, 3, None, dict(DEMO_OPTIONS)))
    path = tmp_path_factory.mktemp("traces") / "traces.jsonl"
    lines = [{"nums": r["nums"], "target": r["target"], "completion": task.reference_completion(r)} for r in rows]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def start(stage: str, model: Path, run: Path, traces: Path, hardware: Any = None, **overrides: Any) -> None:
    cfg = small_config(model, run, max_steps=1, **overrides)
    hardware = hardware or PROFILES["none"]
    if stage == "grpo":
        engine.train(cfg, progress=False, hardware=hardware)
    else:
        train_sft(cfg, str(traces), progress=False, hardware=hardware)


@pytest.mark.parametrize("stage", STAGES)
def test_a_model_path_that_does_not_exist(stage: str, small_model: Path, tmp_path: Path, traces: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        start(stage, tmp_path / "no-such-model", tmp_path / "run", traces)
    assert not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.parametrize("stage", STAGES)
def test_lengths_beyond_the_model_context(stage: str, small_model: Path, tmp_path: Path, traces: Path) -> None:
    # the small model has 1024 positions
    with pytest.raises(ValueError, match="exceeds the model's context of 1024"):
        start(stage, small_model, tmp_path / "run", traces, max_completion_length=1000)


@pytest.mark.parametrize("stage", STAGES)
def test_a_prompt_longer_than_max_prompt_length(stage: str, small_model: Path, tmp_path: Path, traces: Path) -> None:
    with pytest.raises(ValueError, match="more than max_prompt_length 8: raise --max-prompt-length"):
        start(stage, small_model, tmp_path / "run", traces, max_prompt_length=8)


@pytest.mark.parametrize("stage", STAGES)
def test_a_backend_that_cannot_run_here(stage: str, small_model: Path, tmp_path: Path, traces: Path) -> None:
    with pytest.raises(ValueError, match="no CUDA GPU found, but backend unsloth needs one"):
        start(stage, small_model, tmp_path / "run", traces, backend="unsloth")


@pytest.mark.parametrize("stage", STAGES)
def test_a_memory_plan_that_does_not_fit_a_small_card(
    stage: str, small_model: Path, tmp_path: Path, traces: Path
) -> None:
    card = replace(PROFILES["laptop-8gb"], memory_gb=0.1)  # the simulated 8 GB laptop, with 100 MB left
    with pytest.raises(ValueError, match="exceeds the GPU's 0.1 GB|does not fit 0.1 GB"):
        start(stage, small_model, tmp_path / "run", traces, hardware=card)


def test_sft_plans_one_training_step_without_rollouts(small_model: Path, tmp_path: Path) -> None:
    """SFT generates nothing: its plan drops the rollout phase and vLLM's share, and names SFT's own knobs."""
    from lowvram_r1.memory.fit import fit_for_training
    from lowvram_r1.memory.planner import PHASES, plan

    cfg = small_config(small_model, tmp_path / "run", use_vllm=True, vllm_gpu_memory_utilization=0.5)
    sft = replace(cfg, generation=replace(cfg.generation, use_vllm=False))
    step_gb = plan(sft, 8).peak_bytes(PHASES[:3]) / 2**30
    assert step_gb < plan(cfg, 8).total_gb
    with pytest.raises(ValueError, match="one training step exceeds.*--batch-size") as refused:
        fit_for_training(sft, step_gb * 0.9, rollouts=False)
    assert "--num-generations" not in str(refused.value)
    assert fit_for_training(sft, step_gb * 1.1, rollouts=False) == sft
    with pytest.raises(ValueError, match="drop --auto-fit"):
        fit_for_training(sft, 8, auto_fit=True, rollouts=False)


@pytest.mark.parametrize("stage", STAGES)
def test_a_run_folder_that_is_not_ours(stage: str, small_model: Path, tmp_path: Path, traces: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "thesis.tex").write_text("mine")
    with pytest.raises(ValueError, match="holds no lowvram-r1 run"):
        start(stage, small_model, run, traces)
    assert sorted(os.listdir(run)) == ["thesis.tex"]


@pytest.mark.parametrize("stage", STAGES)
def test_a_run_folder_that_holds_links(stage: str, small_model: Path, tmp_path: Path, traces: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "elsewhere").write_text("")
    (run / "metrics.jsonl").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="link"):
        start(stage, small_model, run, traces)
    assert (tmp_path / "elsewhere").read_text() == ""


@pytest.mark.parametrize("stage", STAGES)
def test_resume_without_a_checkpoint(stage: str, small_model: Path, tmp_path: Path, traces: Path) -> None:
    with pytest.raises(ValueError, match="no complete checkpoint to resume from"):
        start(stage, small_model, tmp_path / "run", traces, resume=True)


@pytest.mark.parametrize("stage", STAGES)
def test_a_reward_that_cannot_load(stage: str, small_model: Path, tmp_path: Path, traces: Path) -> None:
    rewards = tmp_path / "rewards.py"
    rewards.write_text("def other_reward(completions, **kwargs):\n    return [0.0 for _ in completions]\n")
    with pytest.raises(ValueError, match="missing_reward"):
        start(stage, small_model, tmp_path / "run", traces, **{"task.rewards": {f"{rewards}:missing_reward": 1.0}})


@pytest.mark.parametrize("stage", STAGES)
def test_several_processes_without_a_launcher(stage: str, small_model: Path, tmp_path: Path, traces: Path) -> None:
    with pytest.raises(ValueError, match="--num-processes 2"):
        start(stage, small_model, tmp_path / "run", traces, num_processes=2)
