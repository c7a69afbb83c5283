"""Run controls: start a launch as a detached process, and stop, resume, delete runs; what state a run is in.

    launcher = Launcher(Path("runs"))
    launcher.start(build_launch(request, Path("runs"), PACKAGE_RECIPES))   # pid; output in runs/NAME/train.log
    launcher.state(Path("runs/NAME"))     # starting / running / finished / stopped / failed / died
    launcher.stop(Path("runs/NAME"))      # graceful: the STOP file; the run checkpoints and marks itself stopped

Processes are started in their own session, so a run outlives a panel refresh or restart. Every event is callable
without the UI's confirmation dialog (Gradio's HTTP API), so each action is safe on its own: a run's live trainer is
the process holding its lock (:func:`lowvram_r1.runs.lifecycle.trainer_pid`) or, before it took it, the process
this panel started; stop signals only those, delete and resume refuse a run that has one, and only real folders
directly under the runs folder are acted on (never a symlink). Delete holds the lock every start and resume takes
and the run's own trainer lock while it removes the run, so a resume cannot begin in the middle of a delete. Every
file is written and read through :mod:`lowvram_r1.runs.files` (no link followed, no FIFO read).
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
import uuid
from pathlib import Path

from lowvram_r1.runs import RunDir, check_run_name, write_atomic
from lowvram_r1.runs.files import RunFileError, is_real_dir, open_regular, write_file
from lowvram_r1.runs.lifecycle import run_state, take_lock, trainer_pid
from lowvram_r1.runs.ownership import claim_marker
from lowvram_r1.runs.summary import list_runs
from lowvram_r1.ui.launch_command import Launch, resume_launch


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
        run = RunDir(launch.run_dir)
        created = not os.path.lexists(run.path)
        if not created:
            run.check_files()  # a resume: links or FIFOs where the run writes are refused before anything starts
        launch.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            if created:
                claim_marker(run.marker)  # a folder the panel creates is ours from the start
            # the child writes to it; this handle closes once it is spawned
            log = os.fdopen(open_regular(run.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab")
        except RunFileError as error:
            raise ValueError(str(error)) from None
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
        write_atomic(
            run.launch_file, json.dumps({"pid": process.pid, "command": launch.display, "started": time.time()})
        )
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
        """The one liveness rule (:func:`~lowvram_r1.runs.lifecycle.run_state`), knowing this panel's own children:
        starting / running / died / finished / stopped / failed / unknown."""
        return run_state(RunDir(run_dir), starting=self.own_process(run_dir) is not None)

    def _request_stop(self, run: RunDir) -> None:
        try:
            write_file(run.stop_file, "stop requested from the panel\n")  # never through a link
        except RunFileError as error:
            raise ValueError(str(error)) from None
        self.stop_requests.add(run.path)

    def stop(self, run_dir: Path) -> str:
        """Ask a run to save and stop. A training run gets the STOP file (graceful: it checkpoints and marks itself
        stopped at the next step); a process of this panel's still loading gets SIGTERM and is marked stopped."""
        self.check_run_dir(run_dir)
        run = RunDir(run_dir)
        state = self.state(run_dir)
        if state == "running":
            self._request_stop(run)
            return f"stop requested: {run.name} saves a checkpoint and stops after its current step"
        if state == "starting":
            process = self.own_process(run_dir)
            if process is None:  # a trainer holding the lock but not yet running: it reads STOP once it starts
                self._request_stop(run)
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
            elif not os.path.lexists(run.stop_file):  # a dangling link counts as present: nothing is created
                try:
                    write_file(run.stop_file, "stop requested from the panel\n")
                except OSError:
                    self.stop_requests.discard(run_dir)

    def resume(self, run_dir: Path) -> Launch:
        self.check_run_dir(run_dir)
        if self.live(run_dir):
            raise ValueError(f"{run_dir.name} is still running: stop it before resuming")
        launch = resume_launch(run_dir)
        self.start(launch)
        return launch

    def delete(self, run_dir: Path) -> None:
        """Remove a run that no process trains. Holds the start lock (no start or resume of this panel begins) and
        the run's trainer lock (no trainer of any process claims it) while the folder is moved aside, then removes
        it; a trainer that opened the lock before the move finds the lock file gone and refuses."""
        with self._starting:
            self.check_run_dir(run_dir)
            if self.live(run_dir):
                raise ValueError(f"{run_dir.name} is still running: stop it before deleting")
            run = RunDir(run_dir)
            if not is_real_dir(run.path) or not run.is_run():
                raise ValueError(f"{run_dir.name} is not a lowvram-r1 run: the panel deletes only its runs")
            lock = take_lock(run)
            if lock is None:
                raise ValueError(f"{run_dir.name} is still running (its trainer holds the lock): stop it first")
            try:
                trash = run.path.with_name(f".deleting-{run.name}-{uuid.uuid4().hex[:8]}")
                os.rename(run.path, trash)  # atomic: from here on no one finds the run under its name
            finally:
                os.close(lock)
            self.processes.pop(run_dir, None)
        shutil.rmtree(trash)

    def run_dirs(self) -> list[Path]:
        """Run directories (with a status.json, or launched by a panel), newest first."""
        return [run.path for run in list_runs(self.runs_root)]


def log_tail(run_dir: Path, lines: int = 15) -> str:
    """The last lines of the run's train.log (why a run failed to start: bad model path, no network...)."""
    log = RunDir(run_dir).log_file
    try:  # never a link (it could show any file the panel can read), never a FIFO (it would hang the refresh)
        fd = open_regular(log)
        try:
            data = os.pread(fd, 8192, max(0, os.fstat(fd).st_size - 8192))
        finally:
            os.close(fd)
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])
