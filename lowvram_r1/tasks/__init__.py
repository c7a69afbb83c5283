"""Task presets: ``TASKS[name]`` is a :class:`~lowvram_r1.tasks.base.Task` (prompt, data, rewards, check).

>>> from lowvram_r1.tasks import TASKS
>>> sorted(TASKS)[:2]
['countdown', 'gsm8k']
"""

from lowvram_r1.tasks import countdown, gsm8k
from lowvram_r1.tasks.base import Split, Task, TaskDataError

TASKS: dict[str, Task] = {
    countdown.TASK.name: countdown.TASK,
    gsm8k.TASK.name: gsm8k.TASK,
}

__all__ = ["TASKS", "Split", "Task", "TaskDataError"]
