"""Run controls: start a launch as a detached process, and stop, resume, delete runs; what state a run is in.

    launcher = Launcher(Path("runs"))
    launcher.start(build_launch(request, Path("runs"), PACKAGE_RECIPES))   # pid; output in runs/NAME/train.log
    launcher.state(Path("runs/NAME"))     # starting / running / finished / stopped / failed / died
    launcher.stop(Path("runs/NAME"))      # graceful: the STOP file; the run checkpoints and marks itself stopped

Processes are started in their own session, so a run outlives a panel refresh or restart. Every event is callable
without the UI's confirmation dialog (Gradio's HTTP API), so each action is safe on its own: a run's live trainer is
the process holding its lock (:func:`lowvram_r1.runs.lifecycle.trainer_pid`) or, before it took it, the process
this panel started; stop signals only those, delete and resume refuse a run that has one, and only real folders
directly under the runs folder are acted on (never a symlink).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from lowvram_r1.runs import RunDir, check_run_name
from lowvram_r1.runs.lifecycle import trainer_pid
from lowvram_r1.runs.summary import list_runs
from lowvram_r1.ui.launcher import Launch, resume_launch


class Launcher:
    """Starts, stops, resumes and deletes runs under ``runs_root``; remembers the processes it started."""

    def __init__(self, runs_root: Path, cwd: Path | None = None, max_runs: int = 1) -> None:
        self.runs_root = runs_root
        self.cwd = cwd or Path.cwd()
        self.processes: dict[Path, subprocess.Popen] = {}
        self.stop_requests: set[Path] = set()
        self.max_runs = max_runs  # live trainers at once, this panel's and any other under runs_root
        self._starting = threading.Lock()

    def start(self, launch: Launch) -> int:
        """Start a run (a new one or a resume), unless ``max_runs`` runs are live already; returns the pid."""
        with self._starting:  # one start at a time: two requests cannot both take the last free slot
            live = self.live_runs()
            if len(live) >= self.max_runs:
                names = ", ".join(path.name for path in live[:5]) + (", ..." if len(live) > 5 else "")
                raise ValueError(
                    f"{len(live)} run(s) already training ({names}) and this panel runs at most {self.max_runs} at "
                    "a time (default: one per GPU, one on a CPU-only machine): wait for one to finish or stop it in "
                    "the Runs tab, or serve the panel with --max-runs N"
                )
            return self._spawn(launch)

    def live_runs(self) -> list[Path]:
        """Runs with a live trainer: the processes this panel started, then any other run under ``runs_root``
        (started by an earlier panel or the CLI) whose lock a live trainer holds."""
        held = [path for path, process in list(self.processes.items()) if process.poll() is None]
        return held + [path for path in self.run_dirs() if path not in held and self.live(path)]

    def _spawn(self, launch: Launch) -> int:
        """Spawn ``lowvram-r1 <args>`` detached, output to the run's train.log; returns the pid."""
        self.check_run_dir(launch.run_dir)
        if self.live(launch.run_dir):
            raise ValueError(f"{launch.run_dir.name} already has a live trainer: stop it first")
        launch.run_dir.mkdir(parents=True, exist_ok=True)
        run = RunDir(launch.run_dir)
        for path in (run.log_file, run.launch_file):
            if path.is_symlink():
                raise ValueError(f"{path} is a symlink: run files must be real files")
        log = open(run.log_file, "ab")  # the child writes to it; this handle closes once it is spawned
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            [sys.executable, "-m", "lowvram_r1.cli", *launch.args],
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a closed browser tab or panel restart leaves it running
            env=env,
        )
        log.close()
        self.processes[launch.run_dir] = process
        run.launch_file.write_text(json.dumps({"pid": process.pid, "command": launch.display, "started": time.time()}))
        return process.pid

    def check_run_dir(self, run_dir: Path) -> None:
        """Only a real folder (or a name still free) directly under the runs folder, with a safe name."""
        check_run_name(run_dir.name)
        if run_dir.is_symlink():
            raise ValueError(f"{run_dir.name} is a symlink: the panel acts only on real run folders")
        if run_dir.resolve().parent != self.runs_root.resolve():
            raise ValueError(f"{run_dir} is not a run under {self.runs_root}/")

    def own_process(self, run_dir: Path) -> subprocess.Popen | None:
        """The live process this panel started for ``run_dir`` (reaped and forgotten once it ends)."""
        process = self.processes.get(run_dir)
        if process is not None and process.poll() is not None:  # reaps it: no zombie left to look alive
            del self.processes[run_dir]
            return None
        return process

    def pid(self, run_dir: Path) -> int | None:
        """The run's proven trainer: the lock holder, else the process this panel started and still holds."""
        holder = trainer_pid(RunDir(run_dir))
        if holder is not None and holder > 0:
            return holder
        process = self.own_process(run_dir)
        return process.pid if process is not None else None

    def live(self, run_dir: Path) -> bool:
        """Has the run a live trainer (the lock is held, or this panel's process for it still runs)?"""
        return trainer_pid(RunDir(run_dir)) is not None or self.own_process(run_dir) is not None

    def state(self, run_dir: Path) -> str:
        """status.json's state, corrected by the lock: starting / running / died / finished / stopped / failed."""
        status = RunDir(run_dir).status()
        state = status.get("state")
        live = self.live(run_dir)
        if state is None or (live and state != "running"):
            # no status yet, or a resume that has not marked itself running yet
            return "starting" if live else ("failed" if state is None else str(state))
        if state == "running" and not live:
            return "died"  # killed without a chance to mark itself; resume continues from its last checkpoint
        return str(state)

    def stop(self, run_dir: Path) -> str:
        """Ask a run to save and stop. A training run gets the STOP file (graceful: it checkpoints and marks itself
        stopped at the next step); a process of this panel's still loading gets SIGTERM and is marked stopped."""
        self.check_run_dir(run_dir)
        run = RunDir(run_dir)
        state = self.state(run_dir)
        if state == "running":
            run.stop_file.write_text("stop requested from the panel\n")
            self.stop_requests.add(run_dir)
            return f"stop requested: {run.name} saves a checkpoint and stops after its current step"
        if state == "starting":
            process = self.own_process(run_dir)
            if process is None:  # a trainer holding the lock but not yet running: it reads STOP once it starts
                run.stop_file.write_text("stop requested from the panel\n")
                self.stop_requests.add(run_dir)
                return f"stop requested: {run.name} stops as soon as it starts training"
            try:
                os.killpg(process.pid, signal.SIGTERM)  # its own session: the group is the trainer and its helpers
            except ProcessLookupError:
                pass  # it ended between the check and the signal
            run.write_status(state="stopped", error="stopped from the panel before training began")
            return f"{run.name} stopped before training began"
        raise ValueError(f"{run.name} is {state}, not running: nothing to stop")

    def keep_stop_requests(self) -> None:
        """The trainer clears a stale STOP file once when it starts; re-assert requests made around that moment."""
        for run_dir in list(self.stop_requests):
            run = RunDir(run_dir)
            if self.state(run_dir) != "running":
                self.stop_requests.discard(run_dir)
            elif not run.stop_file.exists():
                run.stop_file.write_text("stop requested from the panel\n")

    def resume(self, run_dir: Path) -> Launch:
        self.check_run_dir(run_dir)
        if self.live(run_dir):
            raise ValueError(f"{run_dir.name} is still running: stop it before resuming")
        launch = resume_launch(run_dir)
        self.start(launch)
        return launch

    def delete(self, run_dir: Path) -> None:
        self.check_run_dir(run_dir)
        if self.live(run_dir):
            raise ValueError(f"{run_dir.name} is still running: stop it before deleting")
        if not RunDir(run_dir).is_run() and not RunDir(run_dir).launch_file.is_file():
            raise ValueError(f"{run_dir.name} is not a lowvram-r1 run: the panel deletes only its runs")
        shutil.rmtree(run_dir)

    def run_dirs(self) -> list[Path]:
        """Run directories (with a status.json, or launched by a panel), newest first."""
        return [run.path for run in list_runs(self.runs_root)]


def log_tail(run_dir: Path, lines: int = 15) -> str:
    """The last lines of the run's train.log (why a run failed to start: bad model path, no network...)."""
    log = RunDir(run_dir).log_file
    if log.is_symlink():
        return ""  # a symlink could show any file the panel can read
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, handle.seek(0, 2) - 8192))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])
