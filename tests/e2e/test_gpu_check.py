"""The GPU check kit, rehearsed on CPU so that its first GPU minutes are not wasted: the same plumbing as on a GPU
(random-weight model folders, engine.train in child processes, plan beside measurement, the JSON and markdown
report), a stand-in ``unsloth`` that the case must import before transformers (as ``lowvram-r1 train`` does), a case
that overruns its time, and a kit killed in the middle: every finished case stays in the report, and ``--out`` holds
the report alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lowvram_r1.recipes import recipe_path
from tests.paths import ROOT

KIT = ROOT / "bench" / "gpu_check.py"
sys.path.insert(0, str(ROOT / "bench"))
import gpu_check  # noqa: E402

STAND_IN = '''"""A stand-in unsloth: records which of the libraries it patches were imported before it."""
import json, os, sys

with open(os.environ["STAND_IN_RECORD"], "w") as record:
    json.dump([m for m in ("transformers", "trl", "peft") if m in sys.modules], record)
FastLanguageModel = None
'''


def kit(out: Path, work: Path, *flags: str) -> list[str]:
    return [sys.executable, str(KIT), "--out", str(out), "--work", str(work), *flags]


def report(out: Path) -> dict:
    return json.loads((out / "gpu_check.json").read_text())


def only_the_report(out: Path) -> bool:
    return sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")  # the tiny model is built once for the module


@pytest.mark.slow
def test_the_kit_runs_in_cpu_mode_and_reports(tmp_path: Path, work: Path) -> None:
    done = subprocess.run(kit(tmp_path / "out", work, "--cpu"), capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.index("will run") < done.stdout.index("[1/3]")  # the plan is printed before anything runs
    out = report(tmp_path / "out")
    assert out["device"] == "CPU (no CUDA GPU)" and out["commit"]
    assert [r["id"] for r in out["results"]] == ["c0", "c1", "search"]
    for row in out["results"]:
        assert row["outcome"] == "ran", row
        assert row["planned_gb"] > 0 and row["peak_rss_gb"] > 0 and row["tokens_per_s"] > 0
        assert row["seconds_per_step"] is not None
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert table.startswith("GPU check on CPU (no CUDA GPU)") and "| c0: tiny LoRA fp32 + ckpt | ran |" in table
    assert only_the_report(tmp_path / "out")


@pytest.mark.slow
def test_a_stand_in_unsloth_comes_first_and_an_overrun_is_recorded(tmp_path: Path, work: Path) -> None:
    (tmp_path / "site" / "unsloth").mkdir(parents=True)
    (tmp_path / "site" / "unsloth" / "__init__.py").write_text(STAND_IN)
    record = tmp_path / "record.json"
    env = {
        **os.environ,
        "STAND_IN_RECORD": str(record),
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")]),
    }
    flags = ("--cpu", "--unsloth", "--stall", "u0-hf:5")
    done = subprocess.run(kit(tmp_path / "out", work, *flags), env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(record.read_text()) == []  # unsloth came before transformers, trl and peft
    stand_in, overrun = report(tmp_path / "out")["results"]
    assert stand_in["backend"] == "unsloth" and "imported before unsloth" not in stand_in["outcome"]
    assert "no CUDA GPU found" in stand_in["outcome"]  # past the import-order guard, refused by the CPU check
    assert overrun["outcome"] == "timed out after 5 s" and "child_pid" not in overrun
    assert only_the_report(tmp_path / "out")


@pytest.mark.slow
def test_a_killed_kit_leaves_every_finished_case(tmp_path: Path, work: Path) -> None:
    out = tmp_path / "out"
    parent = subprocess.Popen(
        kit(out, work, "--cpu", "--cases", "c0,c1", "--stall", "c1:3600"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child = None
    for _ in range(1800):  # until c0 is done and c1 (which never ends) is running
        rows = report(out)["results"] if (out / "gpu_check.json").is_file() else []
        first = rows[0]["outcome"] or "" if rows else ""
        assert first == "ran" or not first or first.startswith("running"), first  # c0 is re-run in the same --work
        if len(rows) == 2 and first == "ran" and rows[1].get("child_pid"):
            child = rows[1]["child_pid"]
            break
        assert parent.poll() is None, "the kit ended on its own"
        time.sleep(1)
    assert child is not None
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    rows = report(out)["results"]
    assert rows[0]["outcome"] == "ran" and rows[0]["planned_gb"] > 0
    assert rows[1]["outcome"].startswith("running")  # says which case the kit was in when it died
    assert only_the_report(out)
    for _ in range(120):  # the case goes with its parent (PR_SET_PDEATHSIG)
        if not alive(child):
            break
        time.sleep(0.5)
    assert not alive(child)


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()
    except OSError:
        return False


def test_the_gpu_cases_start_with_the_verdicts_and_cover_what_is_new() -> None:
    cases = gpu_check.gpu_cases()
    parts = [c["part"] for c in cases]
    assert parts[:4] == ["verdict"] * 4 and parts.index("measure") == 4
    assert {"search", "server"} <= set(parts) and len({c["id"] for c in cases}) == len(cases)
    measured = {(c["shape"], c["setup"]) for c in cases if c["part"] == "measure"}
    assert {s for s, _ in measured} == {"qwen2.5-0.5b", "qwen2.5-1.5b"} and len(measured) == 7
    assert ("qwen2.5-1.5b", "QLoRA nf4 + offload") in measured
    verdicts = [c for c in cases if c["part"] == "verdict"]
    assert {c["cap_gb"] for c in verdicts} >= {16, 8, 6} and all(recipe_path(c["recipe"]) for c in verdicts)
    from lowvram_r1 import config
    from lowvram_r1.memory import planner as vram

    no_fit = [c for c in verdicts if not vram.plan(config.load(c["recipe"]), c["cap_gb"]).fits]
    assert no_fit, "one case must be a config the planner says does not fit"
    assert {c["backend"] for c in gpu_check.unsloth_cases()} == {"unsloth", "hf"}
    assert [c["part"] for c in gpu_check.select(cases, "search,v8")] == ["verdict", "search"]


def test_the_server_case_is_skipped_with_a_reason_without_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    server = next(c for c in gpu_check.gpu_cases() if c["part"] == "server")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else True)
    assert "vLLM is not installed" in gpu_check.skip_reason(server)
    assert gpu_check.schedule([server], 0) == [True]  # a skip with a reason costs no budget


def test_the_default_budget_fits_one_600_s_command_and_is_announced(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = gpu_check.parse(["--out", str(tmp_path / "out")])
    assert 60 * args.budget_minutes + 30 <= 600 - 60  # the hard stop, with a minute left for the wheel install
    cases = gpu_check.gpu_cases()
    planned = [c for c, fit in zip(cases, gpu_check.schedule(cases, 60 * args.budget_minutes), strict=True) if fit]
    assert planned[:4] == cases[:4]  # the verdicts fit the default budget
    assert gpu_check.main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "w"), "--budget-minutes", "0"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("v16") < printed.index("GPU check on") and "skipped (time budget)" in printed
    assert all(r["outcome"] for r in report(tmp_path / "out")["results"]) and only_the_report(tmp_path / "out")
    with pytest.raises(SystemExit):
        gpu_check.parse(["--out", str(tmp_path), "--work", str(tmp_path / "models")])  # work inside out
