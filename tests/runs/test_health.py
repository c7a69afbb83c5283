"""Run health on recorded run folders (written here, shaped like the recorder's): the findings a tiny CPU run cannot
produce in seconds (entropy collapse, reward hacking, slow rollouts, GPU memory), the CLI, the start-time warnings,
the panel's Health card and its evidence links. Real tiny runs: tests/runs/test_health_runs.py."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from lowvram_r1 import config
from lowvram_r1.cli import main
from lowvram_r1.runs import RunDir, append_jsonl
from lowvram_r1.runs.health import RunHealth, diagnose
from lowvram_r1.runs.reader import RunCache, read_jsonl

SETTINGS = {
    "training": {"num_generations": 4, "learning_rate": 0.0005},
    "generation": {"max_completion_length": 48, "temperature": 1.0},
}


def healthy(step: int, steps: int) -> dict[str, Any]:
    """A learning run's metrics line: reward and accuracy rise, entropy steady, little truncation."""
    progress = step / steps
    return {
        "kind": "train",
        "step": step,
        "step_time": 1.0,
        "generation_time": 0.4,
        "reward": 0.2 + 0.4 * progress,
        "frac_reward_zero_std": 0.3,
        "completions/clipped_ratio": 0.02,
        "entropy": 0.25,
        "rewards/format_reward/mean": 0.95,
        "rewards/equation_reward/mean": 0.15 + 0.3 * progress,
        "train_accuracy": 0.15 + 0.3 * progress,
    }


def recorded(tmp_path: Path, train: list[dict], evals: list[dict] = (), completions: list[dict] = (), **settings):
    run = RunDir(tmp_path / "run")
    run.path.mkdir(parents=True, exist_ok=True)
    merged = {**SETTINGS, **settings}
    run.config.write_text(yaml.safe_dump(merged))
    run.write_status(state="finished", step=train[-1]["step"] if train else 0, max_steps=len(train))
    append_jsonl(run.metrics, [{"kind": "eval", **e} for e in evals] + train)
    append_jsonl(run.completions, completions)
    return run


def ids(run: RunDir) -> dict[str, Any]:
    cache = RunCache(run.path)
    cache.refresh()
    return {f.id: f for f in diagnose(cache)}


def test_a_healthy_learning_run_has_no_finding(tmp_path: Path) -> None:
    run = recorded(
        tmp_path, [healthy(s, 60) for s in range(1, 61)], [{"step": 0, "accuracy": 0.1}, {"step": 60, "accuracy": 0.3}]
    )
    assert ids(run) == {}


def test_entropy_collapsing_while_held_out_accuracy_stalls(tmp_path: Path) -> None:
    train = [{**healthy(s, 40), "reward": 0.4, "entropy": 1.0 - 0.9 * s / 40} for s in range(1, 41)]
    stalled = [{"step": 0, "accuracy": 0.2}, {"step": 20, "accuracy": 0.25}, {"step": 40, "accuracy": 0.2}]
    found = ids(recorded(tmp_path / "a", train, stalled))
    assert set(found) == {"entropy_collapse"}
    finding = found["entropy_collapse"]
    assert finding.evidence["figures"]["entropy_first"] > 4 * finding.evidence["figures"]["entropy_last"]
    assert "--learning-rate (now 0.0005)" in finding.advice and "--beta" in finding.advice
    rising = [{"step": 0, "accuracy": 0.2}, {"step": 40, "accuracy": 0.4}]  # a sharpening policy that still learns
    assert ids(recorded(tmp_path / "b", train, rising)) == {}


def test_reward_rising_while_held_out_accuracy_does_not_is_reward_hacking(tmp_path: Path) -> None:
    train = [{**healthy(s, 30), "reward": 0.2 + 0.6 * s / 30} for s in range(1, 31)]
    found = ids(recorded(tmp_path, train, [{"step": 0, "accuracy": 0.3}, {"step": 30, "accuracy": 0.3}]))
    assert set(found) == {"reward_hacking"}
    query = found["reward_hacking"].evidence["completions"]
    assert query["correct"] == "wrong" and query["order"] == "reward" and query["reward_min"] > 0.6


def test_learning_the_format_first_while_accuracy_is_flat_is_not_reward_hacking(tmp_path: Path) -> None:
    train = [
        {
            **healthy(s, 30),
            "reward": 0.2 + 0.3 * s / 30,  # format weighted 0.3
            "rewards/format_reward/mean": 0.1 + 0.9 * s / 30,
            "rewards/equation_reward/mean": 0.2,
            "train_accuracy": 0.2,
        }
        for s in range(1, 31)
    ]
    assert ids(recorded(tmp_path, train, [{"step": 0, "accuracy": 0.2}, {"step": 30, "accuracy": 0.2}])) == {}


def test_one_reward_climbing_while_the_check_falls_is_reward_hacking(tmp_path: Path) -> None:
    train = [
        {
            **healthy(s, 30),
            "reward": 0.4,
            "rewards/format_reward/mean": 0.2 + 0.7 * s / 30,
            "rewards/equation_reward/mean": 0.2,
            "train_accuracy": 0.4 - 0.2 * s / 30,
        }
        for s in range(1, 31)
    ]
    finding = ids(recorded(tmp_path, train))["reward_hacking"]
    assert finding.severity == "critical"  # the check fell
    assert finding.evidence["summary"].startswith("format_reward rose")


def test_reward_errors_counted_from_metrics_and_from_none_in_completions(tmp_path: Path) -> None:
    train = [{**healthy(s, 4), "rewards/my_reward/errors": float(s == 2)} for s in range(1, 5)]  # issue 30's count
    completions = [
        {"step": s, "prompt": "p", "completion": f"c{s}{i}", "rewards": {"my_reward": 1.0}, "reward": 1.0}
        for s in range(1, 5)
        for i in range(8)
    ]
    finding = ids(recorded(tmp_path / "metrics", train, completions=completions))["reward_errors"]
    assert finding.evidence["figures"]["errors"] == 1 and finding.severity == "warning"  # 1 of 32 completions
    assert (
        finding.evidence["figures"]["my_reward_errors"] == 1
        and "my_reward returned None" in finding.evidence["summary"]
    )
    # TRL writes NaN for a reward that returned None: it reaches the file as null, and is counted
    nan = [{**c, "rewards": {"my_reward": math.nan if c["completion"].endswith("0") else 1.0}} for c in completions]
    run = recorded(tmp_path / "none", [healthy(s, 4) for s in range(1, 5)], completions=nan)
    assert all(
        r["rewards"]["my_reward"] is None for r in read_jsonl(run.completions)[0] if r["completion"].endswith("0")
    )
    finding = ids(run)["reward_errors"]
    assert finding.evidence["figures"] == {"errors": 4, "completions": 32}
    assert finding.evidence["example"] == {"step": 1, "rewards": ["my_reward"], "completion": "c10"}


@pytest.mark.parametrize(("use_vllm", "flag"), [(False, "--use-vllm"), (True, "--vllm-gpu-memory-utilization")])
def test_generation_taking_most_of_the_step_is_slow_rollouts(tmp_path: Path, use_vllm: bool, flag: str) -> None:
    gpu = {"memory/device_total_gb": 24.0, "memory/device_used_gb": 16.0, "memory/peak_reserved_gb": 12.0}
    train = [{**healthy(s, 5), "generation_time": 0.9, **gpu} for s in range(1, 6)]
    finding = ids(recorded(tmp_path, train, generation={**SETTINGS["generation"], "use_vllm": use_vllm}))[
        "slow_rollouts"
    ]
    assert finding.evidence["figures"]["generation_share"] == 0.9
    assert flag in finding.advice
    # a CPU run (no device memory recorded) is never slow_rollouts: vLLM is no faster than generate there
    cpu = [{**healthy(s, 5), "generation_time": 0.9} for s in range(1, 6)]
    assert "slow_rollouts" not in ids(recorded(tmp_path / "cpu", cpu))


@pytest.mark.parametrize(("used", "severity", "words"), [(136.0, "warning", "will run out"), (40.0, "info", "room")])
def test_gpu_memory_against_the_card_is_memory_headroom(tmp_path: Path, used: float, severity: str, words: str) -> None:
    # the trainer peaked 10 GB above what it holds now; vLLM's pool and the rest hold used - 20 GB
    memory = {
        "memory/peak_reserved_gb": 20.0,
        "memory/reserved_gb": 10.0,
        "memory/device_used_gb": used - 10,
        "memory/device_total_gb": 141.0,
    }
    finding = ids(recorded(tmp_path, [{**healthy(s, 3), **memory} for s in range(1, 4)]))["memory_headroom"]
    assert finding.severity == severity and words in finding.evidence["summary"]
    assert finding.evidence["figures"]["peak_gb"] == used
    between = {**memory, "memory/device_used_gb": 100.0}
    assert ids(recorded(tmp_path / "ok", [{**healthy(s, 3), **between} for s in range(1, 4)])) == {}


def test_findings_are_recomputed_only_when_records_arrive(tmp_path: Path) -> None:
    run = recorded(tmp_path, [{**healthy(s, 3), "completions/clipped_ratio": 0.6} for s in range(1, 4)])
    cache = RunCache(run.path)
    cache.refresh()
    monitor = RunHealth(cache)
    first = monitor.findings()
    assert [f.id for f in first] == ["truncated"] and monitor.findings() is first
    append_jsonl(run.metrics, [{**healthy(s, 3), "completions/clipped_ratio": 0.0} for s in range(4, 14)])
    cache.refresh()
    assert monitor.findings() == []  # the last 10 steps are no longer cut


def test_health_cli_json_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = recorded(tmp_path, [{**healthy(s, 3), "completions/clipped_ratio": 0.6} for s in range(1, 4)])
    assert main(["health", str(run.path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [f["id"] for f in printed] == ["truncated"]
    assert set(printed[0]) == {"id", "severity", "evidence", "advice"}
    assert printed[0]["evidence"]["steps"] == [1, 3] and "--max-completion-length (now 48" in printed[0]["advice"]
    assert main(["health", str(run.path)]) == 0
    assert "CRITICAL truncated [steps 1-3]" in capsys.readouterr().out
    assert main(["health", str(tmp_path / "missing")]) == 2
    assert "is not a run directory" in capsys.readouterr().err


class WordTokenizer:
    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict[str, list[list[str]]]:
        return {"input_ids": [t.split() for t in texts]}


def test_start_warnings_name_configs_sure_to_produce_a_finding() -> None:
    from lowvram_r1.tasks import get_task
    from lowvram_r1.train.start_checks import start_warnings

    task = get_task("countdown")
    rows = [{"steps": ["1 + 2 = 3"] * 20, "solution": "1 + 2"}] * 4  # 20 steps: about 100 words

    def prepared(**overrides: Any) -> SimpleNamespace:
        return SimpleNamespace(cfg=config.load(None, overrides), task=task, train_rows=rows)

    assert start_warnings(prepared(max_completion_length=256), WordTokenizer()) == []
    lines = start_warnings(
        prepared(num_generations=2, temperature=0.05, reward_weights=[0.0, 0.0], max_completion_length=16),
        WordTokenizer(),
    )
    assert [line.split(":")[0] for line in lines] == ["no_signal", "no_signal", "no_signal", "truncated"]
    assert "--num-generations 2" in lines[0] and "raise --max-completion-length to at least 107" in lines[3]


def test_nan_is_written_as_null_so_strict_readers_keep_the_record(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    append_jsonl(path, [{"step": 1, "reward": math.nan, "rewards": {"a": math.inf}}])
    assert read_jsonl(path)[0] == [{"step": 1, "reward": None, "rewards": {"a": None}}]
