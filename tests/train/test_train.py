"""A real GRPO run on CPU with a small tiny model: LoRA weights change, the run directory is written and
read back, and a run killed with SIGKILL resumes to exactly max_steps with every step recorded once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.cli import main
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.reader import read_jsonl
from lowvram_r1.train import engine

pytestmark = pytest.mark.slow
SMALL = {
    "num_generations": 4,
    "batch-size": 8,
    "max_completion_length": 40,
    "max_prompt_length": 64,
    "learning_rate": 5e-3,
    "eval_size": 16,
    "system_prompt": "",
    "save_steps": 2,
}


def small_config(model: Path, run: Path, **overrides: object) -> config.RunConfig:
    recipe = {
        "task": {
            "options": {
                "min_numbers": 3,
                "max_numbers": 3,
                "max_number": 9,
                "max_target": 100,
                "question_style": "compact",
                "train_size": 500,
                "test_size": 16,
            }
        }
    }
    values = config.merge(config.RunConfig().to_dict(), recipe, "test")
    base = config.from_dict(values)
    path = run.parent / f"{run.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    config.save(base, path)
    return config.load(path, {**SMALL, "model": str(model), "output_dir": str(run), **overrides})


def lora_b_norm(adapter: Path) -> float:
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    return sum(float(t.abs().sum()) for name, t in weights.items() if "lora_B" in name)


def test_few_steps_train_and_write_the_run_directory(
    small_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = RunDir(tmp_path / "runs" / "few")
    summary = engine.train(small_config(small_model, run.path, max_steps=3), progress=False)

    assert summary["state"] == "finished" and summary["steps"] == 3
    assert run.status()["state"] == "finished"
    # peft initialises lora_B to zero: any non-zero value means the optimiser moved the adapter
    assert lora_b_norm(run.adapter) > 0
    records, _ = read_jsonl(run.metrics)
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert all("reward" in r and "rewards/equation_reward/mean" in r and "train_accuracy" in r for r in train)
    assert [r["step"] for r in records if r["kind"] == "eval"] == [0, 3]
    completions, _ = read_jsonl(run.completions)
    assert len(completions) == 3 * 8
    first = completions[0]
    assert set(first) >= {"step", "prompt", "completion", "rewards", "reward", "advantage", "correct"}
    assert set(first["rewards"]) == {"format_reward", "equation_reward", "reflection_reward"}
    assert "Use [" in first["prompt"]
    assert summary["accuracy_before"] is not None and summary["accuracy_after"] is not None

    assert main(["runs", "--root", str(tmp_path / "runs")]) == 0
    assert "few" in capsys.readouterr().out


def test_qlora_4bit_path_trains_on_cpu_with_held_out_eval_between_steps(small_model: Path, tmp_path: Path) -> None:
    # eval_steps=1: an eval-mode pass before, between and after the steps. On AVX512-BF16 CPUs bitsandbytes would
    # repack the 4-bit weights for inference there and the next training step would fail (loading.py).
    run = RunDir(tmp_path / "q4")
    summary = engine.train(
        small_config(small_model, run.path, max_steps=2, load_in_4bit=True, eval_size=4, eval_steps=1),
        progress=False,
    )
    assert summary["steps"] == 2 and lora_b_norm(run.adapter) > 0
    evals = [r["step"] for r in read_jsonl(run.metrics)[0] if r["kind"] == "eval"]
    assert evals == [0, 1, 2]


def test_a_stored_4bit_checkpoint_trains_as_qlora_without_the_flag(stored_4bit_model: Path, tmp_path: Path) -> None:
    # The checkpoint's own quantization config is kept (passing quantization_config=None used to override it and
    # fail with size mismatches), and it gets the 4-bit preparation and the CPU eval guard of --load-in-4bit.
    from lowvram_r1.models.source import bnb_checkpoint

    assert bnb_checkpoint(str(stored_4bit_model))
    run = RunDir(tmp_path / "stored")
    summary = engine.train(
        small_config(stored_4bit_model, run.path, max_steps=2, eval_size=4, eval_steps=1), progress=False
    )
    assert summary["steps"] == 2 and lora_b_norm(run.adapter) > 0


def test_sigkill_then_resume_records_every_step_once(small_model: Path, tmp_path: Path) -> None:
    run = RunDir(tmp_path / "killed")
    max_steps = 6
    cfg = small_config(small_model, run.path, max_steps=max_steps, eval_size=0)
    recipe = tmp_path / "killed-full.yaml"
    config.save(cfg, recipe)
    command = [sys.executable, "-m", "lowvram_r1.cli", "train", "--config", str(recipe), "--no-progress"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while run.last_checkpoint() is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(random.uniform(0.0, 1.5))  # kill at an arbitrary moment after the first checkpoint
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert run.last_checkpoint() is not None, "the run died before its first checkpoint"

    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = [r["step"] for r in read_jsonl(run.metrics)[0] if r["kind"] == "train"]
    assert steps == list(range(1, max_steps + 1))
    completion_steps = sorted({r["step"] for r in read_jsonl(run.completions)[0]})
    assert completion_steps == list(range(1, max_steps + 1))
    assert run.status()["state"] == "finished" and run.status()["step"] == max_steps


LOCAL_FILES = {  # hub-backed tasks train offline from a file the test writes
    "gsm8k": lambda i: {"question": f"Ann has {i} pens and buys 2. How many now?", "answer": f"...\n#### {i + 2}"},
    "math": lambda i: {"problem": f"Compute {i} + 1/2.", "solution": f"It is \\boxed{{{i}+\\frac{{1}}{{2}}}}."},
    "search_qa": lambda i: {"question": f"Which number follows {i}?", "golden_answers": [str(i + 1)]},
}
# The search tasks train on a FlashRAG-layout question file with a corpus of their own (FlashRAG's `contents`).
SEARCH_TASKS = ("search_r1", "research", "deepresearcher", "r1_searcher", "deepretrieval")
for _name in SEARCH_TASKS:
    LOCAL_FILES[_name] = lambda i: {
        "id": f"q{i}",
        "question": f"Where was Pell{i} born?",
        "golden_answers": [f"Vor{i}"],
    }


def search_corpus(folder: Path) -> Path:
    corpus = folder / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": str(i), "contents": f'"Pell{i}"\nPell{i} was born in Vor{i}.'}) + "\n" for i in range(40)
        )
    )
    return corpus


@pytest.mark.parametrize(
    "name", ["countdown", "gsm8k", "gsm_symbolic", "logic", "math", "search_qa", "rg:basic_arithmetic", *SEARCH_TASKS]
)
def test_every_task_trains_a_few_steps_offline(name: str, small_model: Path, tmp_path: Path) -> None:
    overrides: dict[str, object] = {
        "task": name,
        "max_steps": 2,
        "eval_size": 4,
        "max_prompt_length": 960,
        "max_completion_length": 16,
        "system_prompt": None,
    }
    if name in LOCAL_FILES:
        data = tmp_path / "data.jsonl"
        data.write_text("".join(json.dumps(LOCAL_FILES[name](i)) + "\n" for i in range(40)))
        overrides["data_path"] = str(data)
        recipe_options = {"test_size": 8}
        if name in SEARCH_TASKS:
            recipe_options.update(corpus=str(search_corpus(tmp_path)), top_k=2, max_turns=2, max_passage_tokens=12)
            overrides["max_prompt_length"] = 512  # the context holds the passages too
    else:
        recipe_options = {"train_size": 32, "test_size": 8}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"task:\n  options: {json.dumps(recipe_options)}\n")
    cfg = config.load(recipe, {**SMALL, **overrides, "model": str(small_model), "output_dir": str(tmp_path / "run")})
    summary = engine.train(cfg, progress=False)
    assert summary["state"] == "finished" and summary["steps"] == 2
    records = [r for r in read_jsonl(RunDir(tmp_path / "run").metrics)[0] if r["kind"] == "train"]
    assert [r["step"] for r in records] == [1, 2]


def test_resuming_a_run_at_max_steps_adds_no_step(small_model: Path, tmp_path: Path) -> None:
    run = RunDir(tmp_path / "done")
    engine.train(small_config(small_model, run.path, max_steps=2, eval_size=0), progress=False)
    adapter = lora_b_norm(run.adapter)
    summary = engine.train(small_config(small_model, run.path, max_steps=2, eval_size=0, resume=True), progress=False)
    assert summary["steps"] == 2
    assert [r["step"] for r in read_jsonl(run.metrics)[0] if r["kind"] == "train"] == [1, 2]
    assert lora_b_norm(run.adapter) == pytest.approx(adapter)  # the checkpoint's adapter, not a fresh one
