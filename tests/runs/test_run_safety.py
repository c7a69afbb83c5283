"""Run safety (issue 17): one trainer per run directory, never touch what is not ours, malformed files never crash.

Each test plays a careless or hostile user: the CLI through subprocess, the panel's controls called directly (as
Gradio's HTTP API allows, without the UI's confirmation dialog), odd files inside ``runs/``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.recipes import PACKAGE_RECIPES
from lowvram_r1.runs import RunDir, append_jsonl
from lowvram_r1.runs.lifecycle import RunSession, trainer_pid
from lowvram_r1.runs.reader import RunCache, read_jsonl, truncate_after
from lowvram_r1.runs.summary import list_runs, summarize
from lowvram_r1.ui.controls import Launcher, log_tail
from lowvram_r1.ui.plots import PLOTS, plot_rows
from tests.paths import ROOT

RECIPE = PACKAGE_RECIPES / "cpu-demo.yaml"
HOLD = """
import sys, time
from pathlib import Path
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.lifecycle import RunSession
with RunSession(RunDir(Path(sys.argv[1])), resume=True):
    print("held", flush=True)
    time.sleep(120)
"""


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lowvram_r1.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def resumable(path: Path) -> RunDir:
    """A stopped run with a complete checkpoint (what the panel's resume and `train --resume` accept)."""
    run = RunDir(path)
    checkpoint = run.checkpoints / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / RunDir.CHECKPOINT_COMPLETE).write_text("2")
    config.save(config.load(RECIPE, {"output_dir": str(path)}), run.config)
    run.write_status(state="stopped", pid=999_999_999, step=2, max_steps=10)
    return run


@pytest.fixture
def held(tmp_path: Path):  # noqa: ANN201 - a generator fixture
    """A run whose lock is held by another live process (a trainer, as far as anyone can tell)."""
    run = resumable(tmp_path / "runs" / "busy")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run.path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    assert holder.stdout.readline().strip() == "held"
    yield run, holder
    holder.kill()
    holder.wait()


# -- one trainer per run directory ---------------------------------------------------------------------------------
def test_a_second_trainer_is_refused_while_the_first_lives(held: tuple) -> None:
    run, holder = held
    assert trainer_pid(run) == holder.pid
    done = cli("train", "--output-dir", str(run.path), "--resume")
    assert done.returncode == 2 and f"being trained by another process (pid {holder.pid})" in done.stderr
    assert run.status()["state"] == "stopped"  # the refused trainer wrote nothing


def test_kill_9_never_leaves_the_lock_stuck(held: tuple) -> None:
    run, holder = held
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert trainer_pid(run) is None
    with RunSession(run, resume=True) as session:  # the next trainer claims it at once
        assert trainer_pid(run) == os.getpid() and session.run == run


def test_panel_stop_and_delete_act_only_on_the_proven_trainer(held: tuple) -> None:
    run, holder = held
    launcher = Launcher(run.path.parent)
    for _ in range(3):  # resume called again and again through the API: never a second trainer
        with pytest.raises(ValueError, match="still running"):
            launcher.resume(run.path)
    with pytest.raises(ValueError, match="still running"):
        launcher.delete(run.path)
    assert run.path.is_dir()
    assert launcher.pid(run.path) == holder.pid  # not status.json's stale pid
    message = launcher.stop(run.path)  # status says stopped, the lock says a trainer lives: it gets the STOP file
    assert run.stop_file.is_file() and "stop" in message
    assert holder.poll() is None  # asked, not killed


def test_resume_from_the_panel_starts_one_trainer(tmp_path: Path) -> None:
    run = resumable(tmp_path / "runs" / "stopped")
    launcher = Launcher(run.path.parent, cwd=ROOT)
    launcher.resume(run.path)
    try:
        with pytest.raises(ValueError, match="still running"):
            launcher.resume(run.path)  # the first child may still be importing: it is this panel's, so it counts
        with pytest.raises(ValueError, match="still running"):
            launcher.delete(run.path)
    finally:
        process = launcher.processes[run.path]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_stop_never_signals_a_process_named_only_by_launch_json(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        run = RunDir(tmp_path / "runs" / "forged")
        run.path.mkdir(parents=True)
        run.launch_file.write_text(json.dumps({"pid": bystander.pid, "command": "x", "started": 0}))
        with pytest.raises(ValueError, match="nothing to stop"):
            Launcher(run.path.parent).stop(run.path)
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


# -- never touch what is not ours ------------------------------------------------------------------------------------
def test_train_refuses_a_foreign_folder_and_leaves_it_alone(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    (folder / "adapter").mkdir(parents=True)
    files = {
        "notes.txt": "mine",
        "metrics.jsonl": '{"mine": 1}\n',
        "status.json": '{"mine": true}',
        "adapter/README.md": "my adapter",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    done = cli("train", "--task", "countdown", "--model", "tiny", "--output-dir", str(folder), "--max-steps", "1")
    assert done.returncode == 2 and "holds no lowvram-r1 run" in done.stderr, done.stderr[-800:]
    assert {name: (folder / name).read_text() for name in files} == files
    assert sorted(p.name for p in folder.iterdir()) == ["adapter", "metrics.jsonl", "notes.txt", "status.json"]


def test_train_refuses_system_folders_and_symlinks(tmp_path: Path) -> None:
    from lowvram_r1.train import engine

    link = tmp_path / "runs" / "link"
    link.parent.mkdir()
    link.symlink_to(tmp_path)
    for target, reason in ((Path("/etc"), "holds no lowvram-r1 run"), (link, "is a symlink")):
        with pytest.raises(ValueError, match=reason):
            engine.train(config.load(RECIPE, {"output_dir": str(target), "max_steps": 1}), progress=False)


def test_the_panel_ignores_and_refuses_symlinked_runs(tmp_path: Path) -> None:
    outside = resumable(tmp_path / "outside" / "victim")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "victim").symlink_to(outside.path)
    assert list_runs(runs) == []
    launcher = Launcher(runs)
    for action in (launcher.stop, launcher.resume, launcher.delete):
        with pytest.raises(ValueError, match="symlink"):
            action(runs / "victim")
    assert not outside.stop_file.exists() and not outside.launch_file.exists()
    real = RunDir(runs / "real")
    real.path.mkdir()
    real.write_status(state="failed")
    real.log_file.symlink_to("/etc/passwd")  # the panel must not show the file it points to
    assert log_tail(real.path) == ""
    (outside.path / "m.jsonl").write_text('{"step": 1, "kind": "train", "reward": 1}\n')
    real.metrics.symlink_to(outside.path / "m.jsonl")
    assert read_jsonl(real.metrics)[0] == []


def test_a_failed_resume_leaves_config_yaml_as_it_was(tmp_path: Path) -> None:
    run = resumable(tmp_path / "r")
    before = run.config.read_bytes()
    done = cli("train", "--output-dir", str(run.path), "--resume", "--max-prompt-length", "8")
    assert done.returncode == 2 and "max_prompt_length" in done.stderr, done.stderr[-800:]
    assert run.config.read_bytes() == before and run.status()["state"] == "stopped"
    assert trainer_pid(run) is None


# -- malformed files never take a viewer down --------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["[1, 2]", "null", '"text"', '{"state": 3, "step": "x", "max_steps": [1]}', "{"])
def test_a_malformed_status_json_is_read_as_absent(tmp_path: Path, status: str) -> None:
    runs = tmp_path / "runs"
    good, bad = RunDir(runs / "good"), RunDir(runs / "bad")
    for run in (good, bad):
        run.path.mkdir(parents=True)
    good.write_status(state="finished", step=3, max_steps=3)
    bad.status_file.write_text(status)
    assert {r.name for r in list_runs(runs)} == {"good", "bad"}
    rows = {row["name"]: row for row in map(summarize, list_runs(runs))}
    assert rows["good"]["status"] == "finished" and rows["bad"]["status"] in ("unknown",)
    assert Launcher(runs).state(bad.path) == "unknown"  # the one liveness rule: the panel says what `runs` says
    done = cli("runs", cwd=tmp_path)
    assert done.returncode == 0 and "good" in done.stdout, done.stderr[-800:]


def test_malformed_metric_lines_are_skipped_and_counted_on_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    append_jsonl(run.metrics, [{"kind": "train", "step": 1, "reward": 0.5}])
    with open(run.metrics, "a") as handle:
        handle.write('{"kind": "train", "step": null, "reward": 1}\n[1, 2]\n{"torn": \n')
    append_jsonl(run.metrics, [{"kind": "train", "step": 2, "reward": 0.7}, {"kind": "train", "step": 5}])
    cache = RunCache(run.path)
    cache.refresh()
    assert [r["step"] for r in cache.metrics] == [1, 2, 5]
    assert all(plot_rows(cache, plot) is not None for plot in PLOTS)
    assert "malformed record" in caplog.text and str(run.metrics) in caplog.text
    assert truncate_after(run.metrics, 2) == (1, 3)  # one record after the checkpoint, three malformed lines
    assert [r["step"] for r in read_jsonl(run.metrics)[0]] == [1, 2]


def test_try_it_and_the_live_view_refuse_a_symlinked_run(tmp_path: Path) -> None:
    from lowvram_r1.train.evaluate import answer
    from lowvram_r1.ui.panel import Panel

    outside = resumable(tmp_path / "outside" / "victim")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "victim").symlink_to(outside.path)
    panel = Panel(runs, PACKAGE_RECIPES)
    for call in (panel.cache, panel.log, panel.run_path):
        with pytest.raises(ValueError, match="symlink"):
            call("victim")
    with pytest.raises(ValueError, match="symlink"):
        answer(runs / "victim", "what?")  # the child Try it runs refuses it too, before any model loads
