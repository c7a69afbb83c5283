"""Run health on real tiny CPU runs: each finding a tiny run can produce, produced by one, and none on a
demo-like run. (The findings a tiny run cannot produce in seconds are tested on recorded run folders:
tests/runs/test_health.py.)"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lowvram_r1.cli import main
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.health import diagnose
from lowvram_r1.runs.health_rules import FORMAT_MIN_STEPS
from lowvram_r1.runs.reader import RunCache
from lowvram_r1.train import engine
from tests.train.test_train import small_config

pytestmark = pytest.mark.slow


def findings(run: Path) -> dict[str, Any]:
    cache = RunCache(run)
    cache.refresh()
    return {f.id: f for f in diagnose(cache)}


def test_completions_cut_at_8_tokens_are_truncated_and_never_learn_the_format(
    small_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "cut"
    cfg = small_config(small_model, run, max_steps=FORMAT_MIN_STEPS, max_completion_length=8, eval_size=0)
    engine.train(cfg, progress=False)

    found = findings(run)
    assert {"truncated", "format_not_learned", "no_signal"} <= set(found), found
    truncated = found["truncated"]
    assert truncated.severity == "critical"
    assert truncated.evidence["figures"]["clipped_ratio"] > 0.9  # the model rarely ends within 8 tokens
    assert truncated.evidence["figures"]["max_completion_length"] == 8
    assert truncated.evidence["steps"] == [1, FORMAT_MIN_STEPS]
    assert "--max-completion-length (now 8; try 16)" in truncated.advice
    assert "--system-prompt" in found["format_not_learned"].advice

    capsys.readouterr()
    assert main(["health", str(run), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["id"] in {"truncated", "no_signal", "format_not_learned"}  # all critical, worst first
    assert all(set(f) == {"id", "severity", "evidence", "advice"} for f in printed)
    assert {f["id"] for f in printed} == set(found)


def test_a_constant_reward_has_no_signal_and_is_warned_about_at_start(
    small_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "constant"
    cfg = small_config(small_model, run, max_steps=4, eval_size=0, reward_weights=[0.0, 0.0])
    with caplog.at_level(logging.WARNING, logger="lowvram_r1"):
        engine.train(cfg, progress=False)

    found = findings(run)
    assert "no_signal" in found and found["no_signal"].evidence["figures"]["frac_reward_zero_std"] == 1.0
    assert "--num-generations (now 4)" in found["no_signal"].advice
    assert any("run health: no_signal: every reward weight is 0" in r.getMessage() for r in caplog.records)


def test_a_reward_returning_none_is_a_reward_error_with_its_first_example(small_model: Path, tmp_path: Path) -> None:
    from lowvram_r1.tasks import TASKS

    def sometimes_none_reward(completions: list[Any], **kwargs: Any) -> list[float | None]:
        return [None if i % 4 == 0 else 1.0 for i in range(len(completions))]

    countdown = TASKS["countdown"]
    TASKS["countdown-none"] = replace(
        countdown,
        name="countdown-none",
        reward_funcs=[*countdown.reward_funcs, sometimes_none_reward],
        reward_weights=[*countdown.reward_weights, 0.5],
    )
    try:
        run = tmp_path / "none"
        engine.train(small_config(small_model, run, task="countdown-none", max_steps=2, eval_size=0), progress=False)
    finally:
        del TASKS["countdown-none"]

    found = findings(run)
    errors = found["reward_errors"]
    # 2 steps x 8 completions, one in four None: every record is read (NaN is written as null, not dropped)
    assert errors.evidence["figures"]["errors"] == 4 and errors.evidence["figures"]["completions"] == 16
    assert errors.severity == "critical"  # 25% of the completions
    assert errors.evidence["example"]["rewards"] == ["sometimes_none_reward"]
    assert errors.evidence["example"]["step"] == 1


def test_a_demo_like_run_has_no_finding(small_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The demo's recipe on the session's small tiny model (the demo's own model takes minutes to build on a CPU:
    AVX2 machines, tens of minutes)."""
    run = tmp_path / "demo"
    code = main(
        [
            "train",
            "--config",
            "cpu-demo",
            "--model",
            str(small_model),
            "--max-steps",
            "5",
            "--eval-size",
            "0",
            "--output-dir",
            str(run),
            "--no-progress",
        ]
    )
    assert code == 0
    assert findings(run) == {}
    capsys.readouterr()
    assert main(["health", str(run)]) == 0
    assert "no finding (steps 1-5)" in capsys.readouterr().out
    assert RunDir(run).status()["state"] == "finished"
