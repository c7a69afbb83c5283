"""Task presets: ``TASKS[name]`` is a :class:`~lowvram_r1.tasks.base.Task` (prompt, data, rewards, check).

>>> from lowvram_r1.tasks import TASKS, get_task
>>> sorted(TASKS)  # doctest: +NORMALIZE_WHITESPACE
['countdown', 'deepresearcher', 'deepretrieval', 'gsm8k', 'gsm_symbolic', 'logic', 'math', 'r1_searcher',
 'research', 'search_qa', 'search_r1']
>>> get_task("rg:basic_arithmetic").name      # any reasoning-gym dataset, made on first use
'rg:basic_arithmetic'
"""

from lowvram_r1.tasks import (
    countdown,
    deepresearcher,
    deepretrieval,
    gsm8k,
    gsm_symbolic,
    logic,
    math,
    r1_searcher,
    research,
    search_qa,
    search_r1,
)
from lowvram_r1.tasks.base import Split, Task, TaskDataError

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        countdown.TASK,
        gsm8k.TASK,
        gsm_symbolic.TASK,
        logic.TASK,
        math.TASK,
        search_qa.TASK,
        search_r1.TASK,
        research.TASK,
        deepresearcher.TASK,
        r1_searcher.TASK,
        deepretrieval.TASK,
    )
}


def get_task(name: str) -> Task:
    """``TASKS[name]``, or for ``rg:<name>`` the reasoning-gym task (added to ``TASKS`` on first use)."""
    if name not in TASKS and name.startswith("rg:"):
        from lowvram_r1.tasks.rg import make_rg_task

        TASKS[name] = make_rg_task(name[3:])
    if name not in TASKS:
        raise ValueError(
            f"unknown task '{name}'; available tasks: {', '.join(sorted(TASKS))}, or rg:<name> "
            "for any reasoning-gym dataset (lowvram-r1 tasks --rg)"
        )
    return TASKS[name]


__all__ = ["TASKS", "Split", "Task", "TaskDataError", "get_task"]
