"""One run's lifecycle, the same for GRPO, SFT and every pipeline stage: at most one live trainer per run
directory, the same status transitions, the same stop signals, the same resume.

    with RunSession(RunDir(path), resume=False, stage="grpo") as session:   # claims the folder (or refuses)
        ...load the model...                                                # SIGTERM here ends the process
        resume_from = session.start(config_text, task=..., max_steps=...)  # config.yaml, status running
        ...train; the recorder asks session.should_stop() after each step...
        session.finish(step, max_steps)                                     # finished, or stopped early

- **Claim**: a folder that is a symlink, a file, or a non-empty folder holding no run of ours
  (:mod:`lowvram_r1.runs.ownership`: our marker file) is refused, and so is a run whose files are links or special
  files (nothing of it is touched); otherwise the trainer takes an exclusive ``flock`` on ``.trainer.lock`` (the same
  lock the panel's delete takes), writes its pid there and marks the folder ours. The OS releases the lock when the
  process dies, even on kill -9, so a dead run never stays "busy"; a second trainer on the same folder (the CLI, a
  resume, the panel) is refused while the first lives.
  :func:`trainer_pid` is how a viewer proves which process is the run's trainer.
- **Start** (weights loaded, the run really begins): on resume, records written after the checkpoint are dropped
  (and counted, malformed lines apart); config.yaml is written atomically — for a new run now, for a resume only
  once training has really resumed (:meth:`RunSession.commit_config`: the checkpoint loaded, the first step begins),
  so a run that fails to start or to load its checkpoint leaves config.yaml as it was; status says running; a stale
  STOP file is cleared; SIGTERM becomes "save and stop".
- **Stop**: the STOP file or SIGTERM: the recorder checkpoints and stops at the next step boundary.
- **End**: finished (all steps, or a stop after the last), stopped (a stop request or Ctrl-C), failed (an error,
  with its traceback in status.json).
- **Liveness**: :func:`run_state` is the one rule every viewer (``lowvram-r1 runs``, the panel, the notebook) uses:
  a run whose status says running but whose lock no process holds ``died``.
- **Several processes** (``accelerate launch``): only the main one claims, writes and records; the others
  (``main=False``) touch nothing in the folder but read the stop signals like it (the recorder makes every process
  stop at the same step).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from lowvram_r1.runs import RunDir, checkpoint_step, write_atomic
from lowvram_r1.runs.files import RunFileError, is_real_dir, is_regular, open_regular
from lowvram_r1.runs.ownership import claim_marker
from lowvram_r1.runs.reader import truncate_after

logger = logging.getLogger(__name__)


def trainer_pid(run: RunDir) -> int | None:
    """The pid of the process holding the run's trainer lock, or None when no live trainer holds it."""
    try:
        fd = open_regular(run.lock_file)  # never a link, never blocks on a FIFO
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: its holder wrote its pid right after taking it
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1  # -1: held, pid not written yet
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def take_lock(run: RunDir) -> int | None:
    """Take the run's trainer lock without waiting: its descriptor (close it to release), or None when a live
    process holds it. The descriptor is checked to still be the lock file's (a delete may have removed the folder
    between the open and the lock). ``ValueError`` when the lock file is a link, a FIFO or a folder."""
    try:
        fd = open_regular(run.lock_file, os.O_RDWR | os.O_CREAT)
    except RunFileError:
        raise ValueError(_not_a_lock(run)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        same = os.path.samestat(os.fstat(fd), os.lstat(run.lock_file))
    except OSError:
        same = False
    if not same:
        os.close(fd)
        raise ValueError(f"{run.path} was removed or replaced while it was being claimed: nothing was written")
    return fd


def _not_a_lock(run: RunDir) -> str:
    kind = "a symlink" if os.path.islink(run.lock_file) else "a folder" if run.lock_file.is_dir() else "not a file"
    return (
        f"{run.lock_file} cannot be the run's lock file ({kind}): it must be a regular file that lowvram-r1 writes; "
        "move it away, or choose another --output-dir"
    )


def run_state(run: RunDir, starting: bool = False) -> str:
    """The one liveness rule (CLI, panel, notebook): status.json's state corrected by the trainer lock.

    running / starting / died / finished / stopped / failed / unknown. ``starting``: the viewer itself knows a
    process it started for this run is still alive (before it takes the lock). A run that says running while no
    process holds its lock was killed: ``died`` (resume continues from its last checkpoint)."""
    state = run.status().get("state")
    live = starting or trainer_pid(run) is not None
    if state is None or (live and state != "running"):
        # no status yet, or a resume that has not marked itself running yet
        if live:
            return "starting"
        return "failed" if os.path.lexists(run.launch_file) else "unknown"  # a launch that died before its status
    if state == "running" and not live:
        return "died"
    return str(state)


class RunSession:
    """The context manager a training stage runs in (see the module docstring)."""

    def __init__(self, run: RunDir, resume: bool = False, stage: str = "grpo", main: bool = True) -> None:
        self.run = run
        self.resume = resume
        self.stage = stage
        self.main = main  # False: another training process of the same run (it writes nothing here)
        self.stop_requested = False
        self.started = False
        self._fd: int | None = None
        self._created = False
        self._previous_handler: Any = None
        self._pending_config: str | None = None

    # -- claim ---------------------------------------------------------------------------------------------------
    def __enter__(self) -> RunSession:
        if not self.main:
            return self
        path = self.run.path
        if path.is_symlink():
            raise ValueError(f"{path} is a symlink: give --output-dir a real folder (the run is written there)")
        if os.path.lexists(path) and not is_real_dir(path):
            raise ValueError(f"{path} is a file, not a folder: choose another --output-dir")
        if os.path.lexists(self.run.lock_file) and not is_regular(self.run.lock_file):
            raise ValueError(_not_a_lock(self.run))
        self.run.check_files()  # links or FIFOs where we write: refused before anything else is read
        foreign = self.run.foreign_entries()
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise ValueError(
                f"{path} is not empty and holds no lowvram-r1 run ({shown}): nothing there was touched; "
                "choose a new --output-dir"
            )
        self._created = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        fd = take_lock(self.run)
        if fd is None:
            holder = trainer_pid(self.run)
            raise ValueError(
                f"{path} is being trained by another process (pid {holder}): stop it first (the panel's Stop, or "
                f"touch {self.run.stop_file}), or use another --output-dir"
            )
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            self.run.check_files()  # again, under the lock: nothing was planted between the first look and now
            claim_marker(self.run.marker)
        except (OSError, ValueError) as error:
            self.__exit__(None, None, None)
            raise ValueError(str(error)) from None
        return self

    # -- start ---------------------------------------------------------------------------------------------------
    def start(self, config_text: str, **status: Any) -> Path | None:
        """The run begins: returns the checkpoint to resume from (None for a fresh run)."""
        resume_from = self.run.last_checkpoint() if self.resume else None
        if self.resume and resume_from is None:
            raise ValueError(f"--resume: {self.run.path} has no complete checkpoint to resume from")
        if not self.main:
            self._catch_sigterm()
            return resume_from
        if resume_from is not None:
            step, late, torn = checkpoint_step(resume_from), 0, 0
            for records in (self.run.metrics, self.run.completions):
                dropped, malformed = truncate_after(records, step)
                late, torn = late + dropped, torn + malformed
            logger.info(
                "resuming from %s (dropped %d records written after it, %d torn or malformed lines)",
                resume_from.name,
                late,
                torn,
            )
        self._pending_config = config_text
        if resume_from is None:
            self.commit_config()
        self.run.write_status(
            state="running",
            stage=self.stage,
            pid=os.getpid(),
            started=time.time(),
            error=None,
            traceback=None,
            **status,
        )
        self.run.stop_file.unlink(missing_ok=True)
        self._catch_sigterm()
        return resume_from

    def commit_config(self) -> None:
        """Write config.yaml (once): for a resume, called once training has really resumed from its checkpoint."""
        if self.main and self._pending_config is not None:
            write_atomic(self.run.config, self._pending_config)
            self._pending_config = None

    def _catch_sigterm(self) -> None:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
            self._previous_handler = signal.signal(signal.SIGTERM, self.request_stop)
        self.started = True

    # -- stop ----------------------------------------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        self.stop_requested = True

    def should_stop(self) -> bool:
        """A STOP file or SIGTERM arrived: save and stop at this step boundary."""
        if os.path.lexists(self.run.stop_file):
            self.stop_requested = True
        return self.stop_requested

    # -- end -----------------------------------------------------------------------------------------------------
    def finish(self, step: int, max_steps: int, **fields: Any) -> str:
        state = "stopped" if self.stop_requested and step < max_steps else "finished"
        self.commit_config()  # a resume that reached its end really resumed
        if self.main:
            self.run.write_status(state=state, step=step, finished=time.time(), **fields)
        return state

    def __exit__(self, kind: Any, error: BaseException | None, trace: Any) -> None:
        try:
            if error is not None and self.started and self.main:
                self.run.write_status(
                    state="stopped" if isinstance(error, KeyboardInterrupt) else "failed",
                    error=f"{type(error).__name__}: {error}",
                    traceback="".join(traceback.format_exception(error))[-4000:],
                    finished=time.time(),
                )
        finally:
            if self._previous_handler is not None:
                signal.signal(signal.SIGTERM, self._previous_handler)
            if self._fd is not None:
                if self._created and not self.started:  # refused before it began: leave no trace of an empty run
                    self.run.lock_file.unlink(missing_ok=True)
                    self.run.marker.unlink(missing_ok=True)
                    try:
                        self.run.path.rmdir()
                    except OSError:
                        pass
                os.close(self._fd)  # releases the lock
                self._fd = None
