"""Several training processes (``accelerate launch`` / torchrun): who writes, what they agree on, what they share.

One process (accelerate's main process) writes the run directory; every process trains, generates its share of
the held-out completions and reads the stop signals. The helpers below are accelerate's own (``PartialState``,
``broadcast_object_list``, ``gather_object``) with the few decisions we add; with one process each is a no-op, so
single-process runs behave exactly as before.

    processes = Processes.start(cpu=not hardware.cuda)   # joins the process group the launcher set up
    run = processes.from_main(lambda: run_dir_for(cfg))   # main decides (or refuses); every process gets the same
    if processes.any(session.should_stop()): ...          # stop together, at the same step
    generator = processes.split(generator)                # held-out prompts split across processes, gathered back
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")
LAUNCHER_VARIABLES = ("WORLD_SIZE", "LOCAL_RANK")  # what torchrun (and accelerate launch through it) sets
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def launched() -> bool:
    """Is this process one of several a launcher started (torchrun / accelerate launch set these variables)?"""
    return all(name in os.environ for name in LAUNCHER_VARIABLES) and int(os.environ["WORLD_SIZE"]) > 1


def die_with_launcher() -> None:
    """Ask Linux to SIGKILL this worker when its launcher dies: torchrun starts workers in their own session, so a
    kill -9 of the launcher would otherwise leave them training (and holding the run's lock) with no one to wait for
    them. A worker whose launcher is already gone exits now. Elsewhere nothing happens."""
    if not sys.platform.startswith("linux"):
        return
    launcher = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            logger.warning(
                "prctl(PR_SET_PDEATHSIG) failed (errno %d): a killed launcher may leave this worker", ctypes.get_errno()
            )
    except (OSError, AttributeError):
        return
    if os.getppid() != launcher:  # the launcher died before the request took effect
        os._exit(1)


def leave_process_group() -> None:
    """Leave the launcher's process group cleanly, once this process has nothing left to share: a barrier, then
    ``destroy_process_group``. A worker that exits with the group still up tears down gloo's threads in the
    interpreter's last moments, racing its peer's own exit (a C++ ``std::terminate``: SIGABRT, and torchrun then
    kills the other worker). Only for the process's end: the CLI calls it after ``engine.train`` returns."""
    if not launched():
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes (one, unless a launcher started several)."""

    index: int = 0
    count: int = 1
    local_index: int = 0

    @property
    def main(self) -> bool:
        return self.index == 0

    @classmethod
    def start(cls, cpu: bool) -> Processes:
        """Join the launcher's process group (gloo on CPU, NCCL on GPUs) through accelerate's ``PartialState``, the
        state the trainer then reuses; a plain single process needs no process group and imports nothing."""
        if not launched():
            return cls()
        from accelerate import PartialState

        die_with_launcher()
        if cpu:  # accelerate would name the device "cpu:<rank>", which torch.load cannot map a resumed optimizer to
            os.environ.setdefault("ACCELERATE_TORCH_DEVICE", "cpu")
        state = PartialState(cpu=cpu)
        if not state.is_main_process:  # one voice: the main process says what the run does
            logging.getLogger("lowvram_r1").setLevel(logging.WARNING)
        logger.info(
            "process %d of %d (%s, backend %s)", state.process_index, state.num_processes, state.device, state.backend
        )
        return cls(state.process_index, state.num_processes, state.local_process_index)

    def from_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` on the main process, its value (or its ``ValueError``) on every process."""
        if self.count == 1:
            return compute()
        from accelerate.utils import broadcast_object_list

        outcome: list[Any] = [None]
        if self.main:
            try:
                outcome = [("value", compute())]
            except ValueError as error:
                outcome = [("error", str(error))]
        kind, value = broadcast_object_list(outcome)[0]
        if kind == "error":
            raise ValueError(value)
        return value

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is True on any of them (one tiny all-reduce)."""
        if self.count == 1:
            return flag
        import torch
        import torch.distributed as dist
        from accelerate import PartialState

        tensor = torch.tensor([1 if flag else 0], device=PartialState().device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def wait(self) -> None:
        """A barrier: every process reaches this point before any goes on."""
        if self.count > 1:
            from accelerate import PartialState

            PartialState().wait_for_everyone()

    def split(self, generate: Callable[[Sequence[Any], int, float], list[str]]) -> Any:
        """A generator that completes only this process's contiguous share of the prompts and returns everyone's
        completions in the original order (held-out evaluation: each prompt generated once, by one process).

        Shorter shares are padded with a repeat of a prompt to the longest, and the repeats dropped after the
        gather: every process then makes the same number of ``generate`` calls, which ZeRO-3 needs (each forward
        gathers the sharded weights from every process, so one process with an extra batch would wait forever)."""
        if self.count == 1:
            return generate

        def shared(prompts: Sequence[Any], max_new_tokens: int, temperature: float) -> list[str]:
            from accelerate.utils import gather_object

            items = list(prompts)
            if not items:
                return []
            shares = shares_of(len(items), self.count)
            width = len(shares[0])
            mine = [items[i] for i in shares[self.index]]
            padded = mine + [mine[-1] if mine else items[-1]] * (width - len(mine))
            gathered = gather_object(generate(padded, max_new_tokens, temperature))
            return [c for i, share in enumerate(shares) for c in gathered[i * width : i * width + len(share)]]

        return shared


def shares_of(n: int, count: int) -> list[range]:
    """The contiguous share of ``n`` items each of ``count`` processes takes (the first ones one more), as
    accelerate's ``split_between_processes`` cuts them."""
    size, extras = divmod(n, count)
    starts = [i * size + min(i, extras) for i in range(count + 1)]
    return [range(starts[i], starts[i + 1]) for i in range(count)]
