"""Task presets: ``TASKS[name]`` is a :class:`~lowvram_r1.tasks.base.Task` (prompt, data, rewards, check).

>>> from lowvram_r1.tasks import TASKS, get_task
>>> sorted(TASKS)  # doctest: +NORMALIZE_WHITESPACE
['countdown', 'dataset', 'deepresearcher', 'deepretrieval', 'gsm8k', 'gsm_symbolic', 'logic', 'math', 'r1_searcher',
 'research', 'search_qa', 'search_r1']
>>> get_task("rg:basic_arithmetic").name      # any reasoning-gym dataset, made on first use
'rg:basic_arithmetic'

A user's task comes from a spec (``./my_task.py:TASK``, ``my_pkg.tasks:TASK``) or an installed package's entry
point (group ``lowvram_r1.tasks``): :mod:`lowvram_r1.tasks.user`. ``dataset`` is the generic dataset task.
"""

from lowvram_r1.tasks import (
    countdown,
    dataset,
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
        dataset.TASK,
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
    """``TASKS[name]``, for ``rg:<name>`` the reasoning-gym task (added to ``TASKS`` on first use), else a user's
    task: a ``./file.py:NAME`` / ``module:NAME`` spec or an installed entry point (:mod:`lowvram_r1.tasks.user`)."""
    from lowvram_r1.tasks.user import is_user_task, load_task

    if is_user_task(name, TASKS):
        return load_task(name, TASKS)
    if name not in TASKS and name.startswith("rg:"):
        from lowvram_r1.tasks.rg import make_rg_task

        TASKS[name] = make_rg_task(name[3:])
    if name not in TASKS:
        presets = sorted(n for n in TASKS if not n.startswith("rg:"))  # not the rg: tasks this process has used
        raise ValueError(
            f"unknown task '{name}'; available tasks: {', '.join(presets)}, or rg:<name> "
            "for any reasoning-gym dataset (lowvram-r1 tasks --rg), or your own: ./my_task.py:TASK (docs/own-task.md)"
        )
    return TASKS[name]


__all__ = ["TASKS", "Split", "Task", "TaskDataError", "get_task"]
