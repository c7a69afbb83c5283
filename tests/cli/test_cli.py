"""CLI: bad input exits 2 with one clear line, before any model loads; `tasks` and `runs` print what they say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lowvram_r1.cli import main


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_unknown_task_lists_tasks_from_the_console_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lowvram_r1.cli", "train", "--task", "nope"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    from lowvram_r1.tasks import TASKS

    # the presets, whatever rg:<name> tasks earlier tests in this process added to TASKS on first use
    presets = sorted(name for name in TASKS if not name.startswith("rg:"))
    assert f"unknown task 'nope'; available tasks: {', '.join(presets)}, or rg:<name>" in result.stderr
    assert "countdown, dataset, deepresearcher, deepretrieval, gsm8k" in result.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "./no/such/folder"], "model path ./no/such/folder does not exist"),
        (["--model", "Qwen/Qwen2.5-0.5B-Instruct"], "no network"),
        (["--num-generations", "3"], "divisible by num_generations"),
        (["--learning-rate", "0"], "learning_rate (--learning-rate) must be a number in (0, 1]"),
        (["--loss-type", "ppo"], "invalid choice"),
        (["--max-steps", "ten"], "invalid int value"),
        (["--gradient-checkpointing", "maybe"], "expected false, true or offload, got 'maybe'"),
        (["--task", "gsm8k"], "the built-in tiny model cannot be built for gsm8k"),  # no GPU: tiny, refused at once
        (["--task", "gsm8k", "--model", "."], "could not load dataset openai/gsm8k"),
    ],
)
def test_bad_input_exits_2(capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    code, _, err = run_cli(capsys, "train", *argv)
    assert code == 2
    assert message in err


def test_unknown_yaml_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("generation:\n  max_new_tokens: 10\n")
    code, _, err = run_cli(capsys, "train", "--config", str(recipe))
    assert code == 2 and "unknown key 'generation.max_new_tokens'; valid keys: max_prompt_length" in err


def test_missing_dataset_columns(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "gsm.jsonl"
    data.write_text("".join(json.dumps({"question": f"1+{i}?", "solution": str(1 + i)}) + "\n" for i in range(300)))
    # a model other than tiny: on a machine without a GPU the tiny model would be refused first (no gsm8k for it)
    code, _, err = run_cli(capsys, "train", "--task", "gsm8k", "--data-path", str(data), "--model", str(tmp_path))
    assert code == 2 and "lack column(s) answer" in err


def test_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli(
        capsys, "train", "--task", "gsm8k", "--data-path", str(tmp_path / "none.jsonl"), "--model", str(tmp_path)
    )
    assert code == 2 and "does not exist" in err


def test_gpu_only_option_refused_before_anything_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOWVRAM_R1_CACHE", str(tmp_path / "cache"))
    code, _, err = run_cli(capsys, "train", "--backend", "unsloth", "--output-dir", str(tmp_path / "run"))
    assert code == 2 and "no CUDA GPU found, but backend unsloth needs one" in err
    assert not (tmp_path / "cache").exists()  # the tiny model was not even built
    assert not (tmp_path / "run").exists()  # and nothing was written


def test_existing_run_needs_resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("{}\n")
    code, _, err = run_cli(capsys, "train", "--output-dir", str(run))
    assert code == 2 and "already holds a run: pass --resume" in err
    code, _, err = run_cli(capsys, "train", "--output-dir", str(run), "--resume")
    assert code == 2 and "no complete checkpoint" in err


def test_tasks_lists_rewards_and_weights(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "tasks")
    assert code == 0
    assert "countdown:" in out and "1.00  equation_reward" in out and "2.00  correctness_reward" in out


def test_help_comes_from_the_config(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert (
        "--num-generations" in out
        and "completions sampled per prompt" in out
        and "countdown, dataset, deepresearcher" in out
    )
