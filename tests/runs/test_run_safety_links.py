"""Run-folder safety, second round (issue 27, items 2-9 and 13): nothing lost, nothing foreign touched, nothing hangs.

Each test plays a careless or hostile user: links and FIFOs planted in a run folder, a foreign folder that looks like
a run, mistyped and oversized records, the panel's controls called directly (as Gradio's HTTP API allows), a delete
racing a resume. No test needs a model: the run folders are built by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lowvram_r1 import config
from lowvram_r1.recipes import PACKAGE_RECIPES
from lowvram_r1.runs import RunDir, append_jsonl
from lowvram_r1.runs.lifecycle import RunSession, trainer_pid
from lowvram_r1.runs.reader import RunCache, read_jsonl
from lowvram_r1.runs.summary import list_runs, summarize
from lowvram_r1.ui.controls import Launcher, log_tail
from tests.paths import ROOT

RECIPE = PACKAGE_RECIPES / "cpu-demo.yaml"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HOLD = """
import sys, time
from pathlib import Path
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.lifecycle import RunSession
with RunSession(RunDir(Path(sys.argv[1])), resume=True):
    print("held", flush=True)
    time.sleep(120)
"""


def resumable(path: Path, state: str = "stopped") -> RunDir:
    """A run with a complete checkpoint, as a trainer older than the ownership marker left it."""
    run = RunDir(path)
    checkpoint = run.checkpoints / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / RunDir.CHECKPOINT_COMPLETE).write_text("2")
    config.save(config.load(RECIPE, {"output_dir": str(path)}), run.config)
    run.write_status(state=state, step=2, max_steps=10)
    return run


def finishes(call: Callable[[], Any], seconds: float = 60) -> Any:
    """``call()``'s result; fails (instead of hanging the suite) when it blocks, e.g. reading a FIFO."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = call()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{call} blocked (a FIFO read?)"
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.fixture
def held(tmp_path: Path):  # noqa: ANN201 - a generator fixture
    """A run marked running whose lock another live process holds (its trainer, as far as anyone can tell)."""
    run = resumable(tmp_path / "runs" / "busy", state="running")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run.path)], stdout=subprocess.PIPE, text=True, env=ENV, start_new_session=True
    )
    assert holder.stdout.readline().strip() == "held"
    yield run, holder
    holder.kill()
    holder.wait()


# -- item 2: delete racing resume ------------------------------------------------------------------------------------
def test_delete_takes_the_trainer_lock_so_a_trainer_that_just_started_keeps_its_run(
    held: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, holder = held
    launcher = Launcher(run.path.parent)
    monkeypatch.setattr(Launcher, "live", lambda self, path: False)  # the liveness check ran just before the claim
    with pytest.raises(ValueError, match="still running"):
        launcher.delete(run.path)
    assert run.last_checkpoint() is not None and run.config.is_file() and holder.poll() is None


def test_delete_waits_for_a_start_or_resume_in_progress(tmp_path: Path) -> None:
    run = resumable(tmp_path / "runs" / "old")
    launcher = Launcher(run.path.parent)
    with launcher._starting:  # a start or resume of this panel is under way
        deleting = threading.Thread(target=launcher.delete, args=(run.path,), daemon=True)
        deleting.start()
        deleting.join(1.0)
        assert deleting.is_alive() and run.last_checkpoint() is not None  # it waits: nothing removed meanwhile
    deleting.join(60)
    assert not deleting.is_alive() and not run.path.exists()
    assert list(run.path.parent.iterdir()) == []  # the folder moved aside for removal is gone too


# -- item 3: a failed resume never rewrites config.yaml ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "field"),
    [({"lora_r": 8}, "lora.r"), ({"lora_alpha": 64}, "lora.alpha"), ({"lora_target_modules": "q_proj"}, "lora.target")],
)
def test_a_resume_that_changes_the_adapter_shape_is_refused_before_loading(
    tmp_path: Path, override: dict, field: str
) -> None:
    from lowvram_r1.run_plan import resolve
    from lowvram_r1.train.prepare import run_dir_for

    run = resumable(tmp_path / "r")
    before = run.config.read_bytes()
    with pytest.raises(ValueError, match=field):
        run_dir_for(resolve(config.load(run.config, {"resume": True, "output_dir": str(run.path), **override})))
    assert run_dir_for(resolve(config.load(run.config, {"resume": True, "max_steps": 20}))) == run  # steps may change
    assert run.config.read_bytes() == before


def test_config_yaml_is_written_only_once_training_really_resumed(tmp_path: Path) -> None:
    run = resumable(tmp_path / "r")
    before = run.config.read_bytes()
    with pytest.raises(RuntimeError, match="checkpoint does not load"):
        with RunSession(run, resume=True) as session:
            session.start("model:\n  name: changed\n", max_steps=10)
            raise RuntimeError("checkpoint does not load")  # what a wrong adapter shape does inside trainer.train
    assert run.config.read_bytes() == before and run.status()["state"] == "failed"
    with RunSession(run, resume=True) as session:
        session.start("model:\n  name: resumed\n", max_steps=10)
        assert run.config.read_bytes() == before
        session.commit_config()  # the recorder's first step after the checkpoint loaded
        assert "resumed" in run.config.read_text()


# -- items 4 and 5: never through a link -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["metrics.jsonl", "completions.jsonl", "adapter", "checkpoints/checkpoint-3"])
def test_a_resume_of_a_run_holding_links_is_refused_and_the_targets_are_untouched(tmp_path: Path, name: str) -> None:
    run = resumable(tmp_path / "r")
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "file.jsonl").write_text('{"step": 9, "mine": true}\n')
    (run.path / name).symlink_to(outside / ("file.jsonl" if name.endswith(".jsonl") else "folder"))
    before = run.config.read_bytes()
    with pytest.raises(ValueError, match="links or special files"):
        with RunSession(run, resume=True) as session:
            session.start("x: 1\n")
    assert (outside / "file.jsonl").read_text() == '{"step": 9, "mine": true}\n'
    assert list((outside / "folder").iterdir()) == [] and run.config.read_bytes() == before
    assert trainer_pid(run) is None


def test_writers_never_write_through_a_link(tmp_path: Path) -> None:
    from lowvram_r1.train.distributed import Processes
    from lowvram_r1.train.stage import save_adapter

    run = resumable(tmp_path / "r")
    target = tmp_path / "victim.txt"
    target.write_text("mine")
    run.metrics.symlink_to(target)
    with pytest.raises(OSError, match="symlink"):
        append_jsonl(run.metrics, [{"step": 3, "kind": "train"}])
    foreign = tmp_path / "foreign_adapter"
    foreign.mkdir()
    run.adapter.symlink_to(foreign)

    class Saver:  # what peft's save_pretrained does: write into the folder it is given
        def save_pretrained(self, folder: Any) -> None:
            (Path(folder) / "adapter_model.safetensors").write_text("weights")

    trainer = type("Trainer", (), {"model": Saver()})()
    with pytest.raises(OSError, match="symlink"):
        save_adapter(trainer, Saver(), run.adapter, Processes())
    assert target.read_text() == "mine" and list(foreign.iterdir()) == []


def test_stop_never_writes_through_a_linked_stop_file(held: tuple, tmp_path: Path) -> None:
    run, _ = held
    target = tmp_path / "victim.txt"
    target.write_text("mine")
    run.stop_file.symlink_to(target)
    launcher = Launcher(run.path.parent)
    with pytest.raises(ValueError, match="symlink"):
        launcher.stop(run.path)
    assert target.read_text() == "mine"
    run.stop_file.unlink()
    dangling = tmp_path / "created-by-the-panel"
    run.stop_file.symlink_to(dangling)  # a dangling link: the next refresh must not create its target
    launcher.stop_requests.add(run.path)
    launcher.keep_stop_requests()
    assert not dangling.exists()
    run.stop_file.unlink()
    assert "stop requested" in launcher.stop(run.path) and run.stop_file.is_file()  # a real STOP still works


# -- item 6: what makes a folder ours ---------------------------------------------------------------------------------
def test_a_foreign_folder_with_a_state_in_its_status_json_is_not_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "other-tool"
    folder.mkdir(parents=True)
    (folder / "status.json").write_text('{"state": "running", "job": 7}')
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no lowvram-r1 run"):
        with RunSession(RunDir(folder)):
            pass
    with pytest.raises(ValueError, match="not a lowvram-r1 run"):
        Launcher(folder.parent).delete(folder)
    (folder / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (folder / "checkpoints" / "checkpoint-1" / RunDir.CHECKPOINT_COMPLETE).write_text("1")
    with pytest.raises(ValueError, match="not a lowvram-r1 run"):
        Launcher(folder.parent).resume(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoints", "notes.txt", "status.json"]
    (folder / "config.yaml").write_text("task: {name: x}\n")  # a config.yaml that is not ours does not help
    assert not RunDir(folder).is_run()


def test_a_claimed_folder_is_marked_ours_and_old_runs_are_adopted(tmp_path: Path) -> None:
    new = RunDir(tmp_path / "new")
    with RunSession(new):
        pass  # refused before it started: leaves nothing
    assert not new.path.exists()
    with RunSession(new) as session:
        session.start("x: 1\n", max_steps=1)
        session.finish(1, 1)
    assert new.is_run() and (new.path / RunDir.MARKER).is_file()
    old = resumable(tmp_path / "old")  # written before the marker existed: still ours, marked at its next claim
    assert old.is_run() and not (old.path / RunDir.MARKER).exists()
    with RunSession(old, resume=True):
        assert (old.path / RunDir.MARKER).is_file()


# -- item 7: FIFOs never block a reader -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["metrics.jsonl", "completions.jsonl", "status.json", "train.log", ".trainer.lock"])
def test_a_fifo_in_a_run_folder_blocks_no_viewer(tmp_path: Path, name: str) -> None:
    from lowvram_r1.ui.panel import Panel

    runs = tmp_path / "runs"
    run = resumable(runs / "r")
    RunDir(runs / "good").path.mkdir()
    RunDir(runs / "good").write_status(state="finished")
    (run.path / name).unlink(missing_ok=True)
    os.mkfifo(run.path / name)
    assert finishes(lambda: {r.name for r in list_runs(runs)}) >= {"good"}
    finishes(lambda: summarize(run))
    finishes(lambda: RunCache(run.path).refresh())
    finishes(lambda: log_tail(run.path))
    finishes(lambda: trainer_pid(run))
    panel = Panel(runs, PACKAGE_RECIPES)
    finishes(panel.runs_table)
    finishes(lambda: panel.live("r"))
    with pytest.raises(ValueError, match="special files|regular file"):
        finishes(lambda: RunSession(run, resume=True).__enter__())
    done = finishes(
        lambda: subprocess.run(
            [sys.executable, "-m", "lowvram_r1.cli", "runs", "--root", str(runs)],
            capture_output=True,
            text=True,
            env=ENV,
        ),
        120,
    )
    assert done.returncode == 0 and "good" in done.stdout, done.stderr[-800:]


# -- item 8: a mistyped field is read as absent ---------------------------------------------------------------------
def test_mistyped_fields_never_break_a_view(tmp_path: Path) -> None:
    from lowvram_r1.ui.panel import Panel
    from lowvram_r1.ui.views import completion_cards

    runs = tmp_path / "runs"
    run = resumable(runs / "typed")
    append_jsonl(
        run.metrics,
        [
            {"kind": "train", "step": 1, "reward": 0.5, "train_accuracy": "x"},
            {"kind": "eval", "step": 1, "accuracy": "x", "n": "y"},
            {"kind": "eval", "step": 2, "accuracy": [1], "n": 4.0},
        ],
    )
    append_jsonl(
        run.completions,
        [
            {"step": 1, "prompt": "p", "completion": "<answer>4</answer>", "rewards": [1, 2], "reward": "high"},
            {"step": 2**63, "prompt": "too far", "completion": "c"},
            {"step": 2, "prompt": ["p"], "completion": "c", "rewards": {"a_reward": "x", "b_reward": 1}, "correct": 3},
        ],
    )
    run.eval_file.write_text('{"n": "y", "accuracy": "x", "pass@4": 0.5, "split": ["t"]}')
    panel = Panel(runs, PACKAGE_RECIPES)
    table = panel.runs_table()
    assert list(table["run"]) == ["typed"]  # the table shows (so the run can still be stopped)
    assert summarize(run)["accuracy"] is None
    for step in (None, 1, 2, float("inf"), float("nan"), 1e300):
        view = panel.live("typed", step=step)
        assert "Evaluation" in view.evaluation and "pass@4" in view.evaluation
    cards = panel.cache("typed").completions(step=2)
    assert cards[0]["rewards"] == {"b_reward": 1} and "prompt" not in cards[0] and "correct" not in cards[0]
    assert ">b 1<" in completion_cards(cards)
    assert [r["step"] for r in read_jsonl(run.completions)[0]] == [1, 2]  # step >= 2**63 is malformed


# -- item 9: bounded reads ------------------------------------------------------------------------------------------
def test_an_oversized_record_is_skipped_without_being_held_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lowvram_r1.runs import reader

    run = resumable(tmp_path / "r")
    with open(run.metrics, "wb") as handle:
        handle.write(b'{"kind": "train", "step": 1, "reward": 1.0}\n')
        handle.write(b'{"kind": "train", "step": 2, "junk": "' + b"x" * (48 << 20))  # 48 MiB, no newline yet
    tracemalloc.start()
    try:
        records, _ = read_jsonl(run.metrics)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r["step"] for r in records] == [1] and peak < (24 << 20), peak  # never the 48 MiB line in memory

    monkeypatch.setattr(reader, "MAX_RECORD", 1 << 20)
    cache = RunCache(run.path)
    cache.refresh()
    assert cache._metrics_scan.skipping and cache._metrics_scan.offset == run.metrics.stat().st_size
    with open(run.metrics, "ab") as handle:  # the oversized line ends; a good record follows
        handle.write(b'"}\n{"kind": "train", "step": 3, "reward": 0.5}\n')
    cache.refresh()  # continues where it stood: the 48 MiB are not read again
    assert [r["step"] for r in cache.metrics] == [1, 3] and cache._metrics_scan.oversized == 1


def test_a_refresh_reads_a_bounded_amount_and_the_next_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lowvram_r1.runs import reader

    run = resumable(tmp_path / "r")
    append_jsonl(run.metrics, [{"kind": "train", "step": s, "reward": s / 10} for s in range(1, 401)])
    monkeypatch.setattr(reader, "CHUNK", 1024)
    monkeypatch.setattr(reader, "REFRESH_BUDGET", 4096)
    cache = RunCache(run.path)
    reads = []
    while cache.refresh(completions=False):
        reads.append(len(cache.metrics))
    assert len(reads) > 3 and [r["step"] for r in cache.metrics] == list(range(1, 401))


# -- item 13: one liveness rule ---------------------------------------------------------------------------------------
def test_a_killed_run_is_died_in_the_cli_the_panel_and_the_notebook(tmp_path: Path) -> None:
    from lowvram_r1.notebook import RunView

    runs = tmp_path / "runs"
    run = resumable(runs / "killed", state="running")  # marked running; no process holds its lock
    assert summarize(run)["status"] == "died"
    assert Launcher(runs).state(run.path) == "died"
    assert RunView(run.path).state() == "died"
    done = subprocess.run(
        [sys.executable, "-m", "lowvram_r1.cli", "runs", "--root", str(runs)], capture_output=True, text=True, env=ENV
    )
    assert done.returncode == 0 and "died" in done.stdout, done.stdout + done.stderr[-800:]


def test_a_live_trainer_is_running_everywhere(held: tuple) -> None:
    run, _ = held
    assert summarize(run)["status"] == "running" == Launcher(run.path.parent).state(run.path)
    json.loads(run.status_file.read_text())  # the holder wrote nothing torn
