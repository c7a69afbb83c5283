"""The run-directory format: whole-line records, incremental reads, truncation on resume, safe names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowvram_r1.runs import RunDir, append_jsonl, check_run_name
from lowvram_r1.runs.reader import read_jsonl, truncate_after
from lowvram_r1.runs.summary import list_runs, summarize


def test_reader_skips_a_partial_last_line_until_it_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"step": 1}, {"step": 2}])
    with open(path, "a") as handle:
        handle.write('{"step": 3')  # a writer caught mid-line
    records, offset = read_jsonl(path)
    assert [r["step"] for r in records] == [1, 2]
    with open(path, "a") as handle:
        handle.write("}\n")
    more, _ = read_jsonl(path, offset)  # incremental: only what is new
    assert [r["step"] for r in more] == [3]


def test_reader_skips_a_torn_line_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "rew\n{"step": 3}\n')
    assert [r["step"] for r in read_jsonl(path)[0]] == [1, 3]


def test_truncate_after_keeps_steps_up_to_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"step": s} for s in range(1, 8)])
    assert truncate_after(path, 4) == (3, 0)
    assert [r["step"] for r in read_jsonl(path)[0]] == [1, 2, 3, 4]


def test_status_is_merged_and_replaced_atomically(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_status(state="running", step=1)
    run.write_status(step=2)
    assert json.loads(run.status_file.read_text())["state"] == "running"
    assert run.status()["step"] == 2
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_last_checkpoint_ignores_incomplete_ones(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    for step, complete in [(2, True), (4, True), (6, False)]:
        folder = run.checkpoints / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "COMPLETE").write_text(str(step))
    assert run.last_checkpoint().name == "checkpoint-4"


def test_summary_and_listing(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "runs" / "demo")
    run.path.mkdir(parents=True)
    run.write_status(state="finished", max_steps=2, task="countdown")
    append_jsonl(
        run.metrics,
        [
            {"kind": "eval", "step": 0, "accuracy": 0.1},
            {"kind": "train", "step": 1, "reward": 0.2},
            {"kind": "train", "step": 2, "reward": 0.5},
            {"kind": "eval", "step": 2, "accuracy": 0.4},
        ],
    )
    summary = summarize(run)
    assert (summary["step"], summary["reward"], summary["accuracy_start"], summary["accuracy"]) == (2, 0.5, 0.1, 0.4)
    assert [r.name for r in list_runs(tmp_path / "runs")] == ["demo"]


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x" * 200, "a b", "run;rm"])
def test_unsafe_run_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        check_run_name(name)
