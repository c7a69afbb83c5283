"""The GPU check kit's CPU mode: the same plumbing as on a GPU (random-weight model folders, engine.train in child
processes, plan beside measurement, the JSON and markdown report), on tiny shapes, so the kit cannot rot between
GPU visits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lowvram_r1.recipes import recipe_path

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_the_kit_runs_in_cpu_mode_and_reports(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--cpu", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["device"] == "CPU (no CUDA GPU)" and report["commit"]
    assert [r["setup"] for r in report["results"]] == ["LoRA fp32 + ckpt", "QLoRA nf4 + ckpt (CPU)"]
    for row in report["results"]:
        assert row["outcome"] == "ran", row
        assert row["planned_gb"] > 0 and row["peak_rss_gb"] > 0 and row["tokens_per_s"] > 0
        assert row["seconds_per_step"] is not None
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.startswith("GPU check on CPU (no CUDA GPU)") and "| tiny LoRA fp32 + ckpt | ran |" in table


def test_the_gpu_cases_cover_what_the_issue_asks() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_check

    cases = gpu_check.gpu_cases()
    measured = {(c["shape"], c["setup"]) for c in cases if c["part"] == "measure"}
    assert {s for s, _ in measured} == {"qwen2.5-0.5b", "qwen2.5-1.5b"} and len(measured) == 7
    offloaded = gpu_check.SETUPS["QLoRA nf4 + offload"]
    assert ("qwen2.5-1.5b", "QLoRA nf4 + offload") in measured and offloaded == {
        **gpu_check.SETUPS["QLoRA nf4 + ckpt"],
        "gradient_checkpointing": "offload",
    }  # the same config, offloaded
    verdicts = [c for c in cases if c["part"] == "verdict"]
    assert {c["cap_gb"] for c in verdicts} >= {16, 8, 6} and all(recipe_path(c["recipe"]) for c in verdicts)
    from lowvram_r1 import config
    from lowvram_r1.memory import planner as vram

    no_fit = [c for c in verdicts if not vram.plan(config.load(c["recipe"]), c["cap_gb"]).fits]
    assert no_fit, "one case must be a config the planner says does not fit"
    assert {c["backend"] for c in gpu_check.unsloth_cases()} == {"unsloth", "hf"}
