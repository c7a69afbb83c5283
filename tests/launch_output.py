"""What a failed multi-process run printed, cut for an assertion message: the lines that say why a worker died
(a Python traceback, a native ``terminate called``/``what():``, faulthandler's dump) come first, then the tail.

torchrun ends its stderr with a summary of exit codes ("exitcode -6 (SIGABRT)") that pushes the cause out of a plain
``stderr[-3000:]``: a CI failure then shows which rank died but never why.
"""

from __future__ import annotations

import os

CAUSES = ("Traceback", "terminate called", "what():", "Fatal Python error", "Error:", "Aborted", "Segmentation fault")
CONTEXT = 12  # lines kept after each cause
LIMIT = 6000  # characters of causes kept


def why_it_failed(stderr: str, tail: int = 2500) -> str:
    """The cause lines of ``stderr`` (each with the lines after it), then its last ``tail`` characters."""
    lines = stderr.splitlines()
    keep: list[int] = []
    for index, line in enumerate(lines):
        if any(cause in line for cause in CAUSES):
            keep.extend(range(index, min(index + CONTEXT, len(lines))))
    picked = sorted(set(keep))
    causes = "\n".join(lines[i] for i in picked)[:LIMIT]
    return f"--- causes ---\n{causes}\n--- tail ---\n{stderr[-tail:]}"


def diagnostic_environment() -> dict[str, str]:
    """The environment for a launched run under test: unbuffered, one thread, and a Python traceback of every
    thread when a worker dies of a signal (faulthandler), with C++ frames in torch's errors."""
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONFAULTHANDLER": "1",
        "TORCH_SHOW_CPP_STACKTRACES": "1",
    }
