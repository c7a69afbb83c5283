"""``train.prepare``: the stage's settings as ``settle_stage`` decides them, and the check that several processes
never build the tiny model together. (The refusals each stage shares are in ``test_stage.py``.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.run_plan import resolve
from lowvram_r1.train.prepare import check_tiny_built, settle_stage
from tests.hardware import PROFILES


def tiny_plan(num_processes: int = 1, **overrides: object):
    cfg = config.load("cpu-demo", {"num_processes": num_processes, **overrides})
    return resolve(cfg, PROFILES["none"])


def test_several_processes_refuse_a_tiny_model_that_is_not_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOWVRAM_R1_CACHE", str(tmp_path))  # an empty cache: nothing built
    with pytest.raises(ValueError, match="not built yet.*--num-processes N"):
        check_tiny_built(tiny_plan(num_processes=2))
    check_tiny_built(tiny_plan())  # one process builds it itself
    marker = tmp_path / "tiny" / tiny_plan(num_processes=2).tiny.key() / "tiny_spec.json"
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    check_tiny_built(tiny_plan(num_processes=2))  # built: the processes only load it


def test_a_stage_that_generates_nothing_trains_on_hf_without_vllm() -> None:
    plan = tiny_plan(use_vllm=True, backend="unsloth")
    sft = settle_stage(plan, 1, stage="sft", generates=False)
    assert (sft.backend, sft.cfg.generation.use_vllm) == ("hf", False)
    assert "sft trains with TRL's trainer" in sft.backend_reason
    grpo = settle_stage(replace(plan, backend="hf", backend_reason="asked"), 1)
    assert (grpo.backend, grpo.backend_reason, grpo.cfg.generation.use_vllm) == ("hf", "asked", True)


def test_the_stage_records_how_many_processes_train() -> None:
    plan = tiny_plan(num_processes=2)
    assert settle_stage(plan, 2).cfg.run.num_processes == 2
    with pytest.raises(ValueError, match="needs a launcher"):
        settle_stage(plan, 1)
    with pytest.raises(ValueError, match="sft trains in one process"):
        settle_stage(plan, 2, stage="sft", generates=False)
