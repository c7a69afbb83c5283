"""R1's other stages on the tiny model, on CPU: export (merged = base + adapter), eval, SFT, rejection sampling,
and the whole SFT -> GRPO -> sample -> SFT -> GRPO chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.cli import main
from lowvram_r1.recipes import PACKAGE_RECIPES
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.reader import read_jsonl
from lowvram_r1.train import engine
from tests.train.test_train import small_config

pytestmark = pytest.mark.slow
DEMO = PACKAGE_RECIPES / "cpu-demo.yaml"


@pytest.fixture(scope="module")
def trained_run(small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    run = RunDir(tmp_path_factory.mktemp("pipeline") / "run")
    engine.train(small_config(small_model, run.path, max_steps=3, eval_size=0, learning_rate=5e-2), progress=False)
    return run


def greedy(model, tokenizer, prompts: list) -> list[str]:  # noqa: ANN001
    from lowvram_r1.train.evaluate import generate

    return generate(model, tokenizer, prompts, max_new_tokens=24, temperature=0.0)


def test_merged_model_matches_base_plus_adapter(trained_run: RunDir, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lowvram_r1.pipeline.export import base_model_path, export_merged

    merged = export_merged(trained_run.path, "16bit", tmp_path / "merged")
    rows = [r["prompt"] for r in read_jsonl(trained_run.completions)[0][:5]]
    prompts = [[{"role": "user", "content": p.split("user: ", 1)[1]}] for p in rows]
    _, base = base_model_path(trained_run)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(trained_run.adapter))
    plain_base = greedy(AutoModelForCausalLM.from_pretrained(base), tokenizer, prompts)
    expected = greedy(with_adapter, tokenizer, prompts)
    assert greedy(AutoModelForCausalLM.from_pretrained(merged), tokenizer, prompts) == expected
    assert expected != plain_base  # the adapter matters, so the comparison above means something


def test_export_4bit_and_gguf_message(trained_run: RunDir, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from transformers import AutoModelForCausalLM

    assert main(["export", str(trained_run.path), "--merged", "4bit", "--output", str(tmp_path / "q4")]) == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "q4")
    assert "Linear4bit" in {type(m).__name__ for m in model.modules()}
    capsys.readouterr()
    assert main(["export", str(trained_run.path), "--gguf", "q4_k_m", "--output", str(tmp_path / "g")]) == 2
    assert "GGUF export needs unsloth on a CUDA GPU" in capsys.readouterr().err


def test_eval_command_writes_eval_json(trained_run: RunDir, small_model: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        [
            "eval",
            "--config",
            str(trained_run.config),
            "--model",
            str(small_model),
            "--adapter",
            str(trained_run.adapter),
            "--limit",
            "8",
            "--samples",
            "4",
        ]
    )
    assert code == 0
    result = json.loads((trained_run.path / "eval.json").read_text())
    assert {"accuracy", "format_rate", "pass@2", "pass@4", "maj@4", "mean_length"} <= set(result)
    assert result["n"] == 8 and result["samples"] == 4 and result["temperature"] == 1.0  # the rollout temperature


def test_pipeline_end_to_end_on_the_tiny_model(tmp_path: Path) -> None:
    from lowvram_r1.pipeline.chain import run_pipeline
    from lowvram_r1.tasks import Split, get_task

    task = get_task("countdown")
    cfg = config.load(DEMO, {"max_steps": 3, "eval_size": 16, "save_steps": 100, "batch-size": 16})
    traces = tmp_path / "traces.jsonl"
    rows = task.build_rows(Split("train", 64, 5, None, dict(cfg.task.options)))
    traces.write_text(
        "".join(
            json.dumps({**{k: r[k] for k in ("nums", "target")}, "completion": task.reference_completion(r)}) + "\n"
            for r in rows
        )
    )
    summaries = run_pipeline(
        cfg, str(traces), tmp_path / "r1", samples_per_prompt=4, sample_prompts=32, sft_steps=3, progress=False
    )
    assert list(summaries) == ["1-sft", "2-grpo", "3-samples", "4-sft", "5-grpo"]
    assert summaries["3-samples"]["kept"] > 0
    kept = [json.loads(line) for line in (tmp_path / "r1" / "3-samples.jsonl").read_text().splitlines()]
    from lowvram_r1.rewards.format import soft_format_reward

    assert len(kept) == summaries["3-samples"]["kept"]
    assert soft_format_reward([k["completion"] for k in kept]) == [1.0] * len(kept)  # only well-formed ones kept
    for stage in ("1-sft", "2-grpo", "4-sft", "5-grpo"):
        run = RunDir(tmp_path / "r1" / stage)
        assert run.status()["state"] == "finished"
        assert (run.adapter / "adapter_config.json").is_file()
    assert summaries["5-grpo"]["accuracy_after"] is not None


def test_sample_and_sft_commands(trained_run: RunDir, small_model: Path, tmp_path: Path) -> None:
    from lowvram_r1.tasks import Split, get_task

    out = tmp_path / "samples.jsonl"
    assert (
        main(
            [
                "sample",
                "--config",
                str(trained_run.config),
                "--model",
                str(small_model),
                "--n",
                "2",
                "--limit",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    stats = json.loads(out.with_suffix(".stats.json").read_text())
    assert stats["prompts"] == 4 and stats["generated"] == 8
    assert sum(stats["pass_rate_histogram"].values()) == 4

    task = get_task("countdown")
    options = config.load(trained_run.config).task.options
    rows = task.build_rows(Split("train", 16, 3, None, dict(options)))
    traces = tmp_path / "traces.jsonl"
    traces.write_text(
        "".join(
            json.dumps({"nums": r["nums"], "target": r["target"], "completion": task.reference_completion(r)}) + "\n"
            for r in rows
        )
    )
    run = tmp_path / "sft"
    sft = [
        "sft",
        "--config",
        str(trained_run.config),
        "--model",
        str(small_model),
        "--data",
        str(traces),
        "--batch-size",
        "4",
        "--save-steps",
        "1",
        "--output-dir",
        str(run),
        "--no-progress",
    ]
    assert main([*sft, "--max-steps", "2"]) == 0
    assert RunDir(run).status()["state"] == "finished"
    assert [r["step"] for r in read_jsonl(RunDir(run).metrics)[0]] == [1, 2]
    assert (run / "adapter" / "adapter_config.json").is_file()
    # SFT's --resume resumes: from checkpoint-2, two more steps, the same run directory
    assert main([*sft, "--max-steps", "4", "--resume"]) == 0
    status = RunDir(run).status()
    assert status["state"] == "finished" and status["stage"] == "sft" and status["step"] == 4
    assert [r["step"] for r in read_jsonl(RunDir(run).metrics)[0]] == [1, 2, 3, 4]
