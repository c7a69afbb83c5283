"""Run controls: start a launch as a detached process, and stop, resume, delete runs; what state a run is in.

    launcher = Launcher(Path("runs"))
    launcher.start(build_launch(request, Path("runs"), Path("configs")))   # pid; output in runs/NAME/train.log
    launcher.state(Path("runs/NAME"))     # starting / running / finished / stopped / failed / died
    launcher.stop(Path("runs/NAME"))      # graceful: the STOP file; the run checkpoints and marks itself stopped

Processes are started in their own session, so a run outlives a panel refresh or restart.
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
from lowvram_r1.ui.launcher import Launch, resume_launch

LAUNCH_FILE = "launch.json"  # written by the panel beside the run: pid and command, before the trainer starts
LOG_FILE = "train.log"


def process_alive(pid: int | None) -> bool:
    """Is ``pid`` a live (not zombie) process? Reads /proc where there is one."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        (started by an earlier panel or the CLI) whose process is alive."""
        held = [path for path, process in list(self.processes.items()) if process.poll() is None]
        return held + [path for path in self.run_dirs() if path not in held and self.alive(path)]

    def _spawn(self, launch: Launch) -> int:
        """Spawn ``lowvram-r1 <args>`` detached, output to the run's train.log; returns the pid."""
        launch.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(launch.run_dir / LOG_FILE, "ab")  # the child writes to it; this handle closes once it is spawned
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
        (launch.run_dir / LAUNCH_FILE).write_text(
            json.dumps({"pid": process.pid, "command": launch.display, "started": time.time()})
        )
        return process.pid

    def pid(self, run_dir: Path) -> int | None:
        status = RunDir(run_dir).status()
        if status.get("pid"):
            return int(status["pid"])
        try:
            return int(json.loads((run_dir / LAUNCH_FILE).read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self, run_dir: Path) -> bool:
        process = self.processes.get(run_dir)
        if process is not None and process.poll() is not None:  # reaps it: no zombie left to look alive
            del self.processes[run_dir]
        return process_alive(self.pid(run_dir))

    def state(self, run_dir: Path) -> str:
        """status.json's state, corrected by what the process table says: starting / running / died / failed..."""
        status = RunDir(run_dir).status()
        state = status.get("state")
        alive = self.alive(run_dir)
        if state is None:
            return "starting" if alive else "failed"
        if state == "running" and not alive:
            return "died"  # killed without a chance to mark itself; resume continues from its last checkpoint
        return str(state)

    def stop(self, run_dir: Path) -> str:
        """Ask a run to save and stop. A training run gets the STOP file (graceful: it checkpoints and marks itself
        stopped at the next step); a process still loading gets SIGTERM and is marked stopped here."""
        run = RunDir(run_dir)
        state = self.state(run_dir)
        if state == "running":
            run.stop_file.write_text("stop requested from the panel\n")
            self.stop_requests.add(run_dir)
            return f"stop requested: {run.name} saves a checkpoint and stops after its current step"
        if state == "starting":
            pid = self.pid(run_dir)
            if pid:
                try:
                    os.killpg(pid, signal.SIGTERM)  # its own session: the group is the trainer and its helpers
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
        if self.alive(run_dir):
            raise ValueError(f"{run_dir.name} is still running: stop it before resuming")
        launch = resume_launch(run_dir)
        self.start(launch)
        return launch

    def delete(self, run_dir: Path) -> None:
        check_run_name(run_dir.name)
        if run_dir.resolve().parent != self.runs_root.resolve():
            raise ValueError(f"{run_dir} is not a run under {self.runs_root}/")
        if self.alive(run_dir):
            raise ValueError(f"{run_dir.name} is still running: stop it before deleting")
        shutil.rmtree(run_dir)

    def run_dirs(self) -> list[Path]:
        """Run directories (with a status.json, or launched by a panel), newest first."""
        if not self.runs_root.is_dir():
            return []
        found = [
            p for p in self.runs_root.iterdir() if (p / "status.json").is_file() or (p / LAUNCH_FILE).is_file()
        ]
        return sorted(found, key=_mtime, reverse=True)


def _mtime(path: Path) -> float:
    for name in ("status.json", LAUNCH_FILE):
        try:
            return (path / name).stat().st_mtime
        except OSError:
            continue
    return 0.0


def log_tail(run_dir: Path, lines: int = 15) -> str:
    """The last lines of the run's train.log (why a run failed to start: bad model path, no network...)."""
    try:
        with open(run_dir / LOG_FILE, "rb") as handle:
            handle.seek(max(0, handle.seek(0, 2) - 8192))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])
