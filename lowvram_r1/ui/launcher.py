"""From form values to a running ``lowvram-r1 train`` process, and the run controls (stop, resume, delete).

    request = LaunchRequest(run_name="demo", recipe="configs/cpu-demo.yaml", values={"max_steps": 20})
    launch = build_launch(request, runs_root=Path("runs"), configs_root=Path("configs"))
    launch.display     # 'lowvram-r1 train --config configs/cpu-demo.yaml --max-steps=20 --output-dir=runs/demo ...'
    Launcher(Path("runs")).start(launch)

Safety: every form value maps to one known config field and travels as one ``--flag=value`` argument of an
argument list (never a shell), so a value that starts with ``--`` or holds spaces stays that field's value; the
config dataclasses validate everything before anything starts; run names go through ``runs.check_run_name``.
Processes are started in their own session, so a run outlives a panel refresh or restart.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowvram_r1 import config
from lowvram_r1.runs import RunDir, check_run_name
from lowvram_r1.tasks import get_task

# Form knob -> config key ("section.field"). Only these travel from the form to the command line.
KNOBS: dict[str, str] = {
    "task": "task.name",
    "model": "model.name",
    "num_generations": "training.num_generations",
    "batch_size": "training.per_device_train_batch_size",
    "learning_rate": "training.learning_rate",
    "max_steps": "training.max_steps",
    "max_completion_length": "generation.max_completion_length",
    "lora_r": "lora.r",
    "beta": "training.beta",
    "loss_type": "training.loss_type",
}
LAUNCH_FILE = "launch.json"  # written by the panel beside the run: pid and command, before the trainer starts
LOG_FILE = "train.log"


@dataclass(frozen=True)
class LaunchRequest:
    run_name: str
    recipe: str | None = None  # a YAML under the configs folder, or None for the defaults
    values: Mapping[str, Any] = field(default_factory=dict)  # KNOBS name -> value; None / "" = keep the recipe's


@dataclass(frozen=True)
class Launch:
    args: list[str]  # after ``lowvram-r1``: what the process gets
    run_dir: Path
    cfg: config.RunConfig

    @property
    def display(self) -> str:
        """The exact command, quoted for a POSIX shell (copy-paste gives the same argument list)."""
        return shlex.join(["lowvram-r1", *self.args])


def list_recipes(configs_root: Path) -> list[str]:
    """Recipe YAMLs under ``configs_root``, recursively, as paths relative to the working directory."""
    if not configs_root.is_dir():
        return []
    return sorted(str(p) for p in configs_root.rglob("*.y*ml") if p.is_file())


def recipe_config(recipe: str | None) -> config.RunConfig:
    return config.load(recipe) if recipe else config.RunConfig()


def knob_values(cfg: config.RunConfig) -> dict[str, Any]:
    """The form's knobs as a config sets them (what the form shows when a recipe is picked)."""
    return {name: _get(cfg, key) for name, key in KNOBS.items()}


def _get(cfg: config.RunConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _flag(key: str) -> str:
    section, name = key.split(".")
    return next(config.flag_name(s, f) for s, f in config.all_fields() if s == section and f.name == name)


def _check_text(knob: str, value: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{knob}: control characters (newlines, tabs) are not allowed")
    if value.startswith("-"):
        raise ValueError(f"{knob} {value!r} cannot start with '-'; for a local folder write ./{value}")


def form_config(
    recipe: str | None, values: Mapping[str, Any], configs_root: Path, output_dir: str | None = None
) -> tuple[config.RunConfig, dict[str, Any]]:
    """The config the form describes (validated by the dataclasses) and the overrides that differ from the recipe."""
    if recipe is not None and recipe not in list_recipes(configs_root):
        raise ValueError(f"recipe {recipe!r} is not a YAML under {configs_root}/: pick one from the list")
    base = recipe_config(recipe)
    overrides: dict[str, Any] = {}
    for knob, value in values.items():
        if knob not in KNOBS:
            raise ValueError(f"unknown form field {knob!r}; known: {', '.join(KNOBS)}")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, str):
            value = value.strip()
            _check_text(knob, value)
        current = _get(base, KNOBS[knob])
        if isinstance(current, int) and isinstance(value, float) and value.is_integer():
            value = int(value)  # number widgets hand integers over as floats
        if value != current:
            overrides[KNOBS[knob]] = value
    extra = {"run.output_dir": output_dir} if output_dir else {}
    cfg = config.load(recipe, {**overrides, **extra})  # the dataclasses' own checks
    get_task(cfg.task.name).resolve_options(cfg.task.options)  # a known task, and the recipe's options fit it
    return cfg, overrides


def build_launch(request: LaunchRequest, runs_root: Path, configs_root: Path) -> Launch:
    """Validate the form through the config dataclasses and build the argument list; raises ``ValueError``."""
    name = check_run_name(request.run_name.strip())
    recipe = request.recipe or None
    run_dir = runs_root / name
    cfg, overrides = form_config(recipe, request.values, configs_root, str(run_dir))
    if run_dir.exists():
        raise ValueError(f"{run_dir} already exists: choose another run name (or resume it from the Runs tab)")
    args = ["train"] + (["--config", recipe] if recipe else [])
    # --flag=value keeps a value that begins with '-' from being read as another flag
    args += [f"--{_flag(key)}={_format(value)}" for key, value in overrides.items()]
    args += [f"--output-dir={run_dir}", "--no-progress"]
    return Launch(args, run_dir, cfg)


def _format(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def resume_launch(run_dir: Path) -> Launch:
    """The command that continues a run from its last complete checkpoint."""
    run = RunDir(run_dir)
    check_run_name(run.name)
    if run.last_checkpoint() is None:
        raise ValueError(f"{run_dir} has no complete checkpoint yet: nothing to resume from")
    cfg = config.load(run.config, {"run.output_dir": str(run_dir), "run.resume": True})
    return Launch(["train", f"--output-dir={run_dir}", "--resume", "--no-progress"], run_dir, cfg)


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

    def __init__(self, runs_root: Path, cwd: Path | None = None) -> None:
        self.runs_root = runs_root
        self.cwd = cwd or Path.cwd()
        self.processes: dict[Path, subprocess.Popen] = {}
        self.stop_requests: set[Path] = set()

    def start(self, launch: Launch) -> int:
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
