"""Tasks from outside the package: a Python file, an importable module, or an installed package's entry point.

    lowvram-r1 train --task ./my_task.py:TASK --model tiny      # a Task object in a file
    lowvram-r1 train --task my_pkg.tasks:TASK                   # ...in an importable module
    lowvram-r1 train --task my_task                             # ...registered by an installed package:
        # pyproject.toml:  [project.entry-points."lowvram_r1.tasks"]
        #                  my_task = "my_pkg.tasks:TASK"

``get_task`` (``lowvram_r1.tasks``) comes here for any name that is not a built-in; the spec it is given is the
one config.yaml stores (a file path made absolute), so every process and stage loads the same object.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points

from lowvram_r1.specs import is_object_spec, load_object, resolve_spec
from lowvram_r1.tasks.base import Task

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lowvram_r1.tasks"
_LOADED: dict[str, Task] = {}  # resolved spec -> task, once per process
_SHADOWED: set[str] = set()  # entry points named like a built-in task, warned about once per process


def entry_point_tasks() -> dict[str, EntryPoint]:
    """Tasks installed packages register under the ``lowvram_r1.tasks`` entry-point group, by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def installed_task_names(builtin: Mapping[str, Task]) -> list[str]:
    """The entry-point tasks a user can choose, sorted: one named like a built-in task could never be reached
    (``--task NAME`` means the built-in), so it is left out and a warning names the package that registers it."""
    names = []
    for name, entry in sorted(entry_point_tasks().items()):
        if name in builtin or name.startswith("rg:"):
            if name not in _SHADOWED:
                _SHADOWED.add(name)
                logger.warning(
                    "the task entry point %s = %s (%s) is named like a built-in task and cannot be chosen: the "
                    "package that registers it must rename it",
                    name,
                    entry.value,
                    ENTRY_POINT_GROUP,
                )
            continue
        names.append(name)
    return names


def is_user_task(name: str, builtin: Mapping[str, Task]) -> bool:
    """Does ``name`` name a task from outside the package (a spec or an installed entry point)?"""
    return name not in builtin and (is_object_spec(name) or name in entry_point_tasks())


def load_task(spec: str, builtin: Mapping[str, Task]) -> Task:
    """The :class:`Task` a spec names, checked: a Task object, its name free of the built-in ones."""
    resolved = resolve_spec(spec)
    if resolved in _LOADED:
        return _LOADED[resolved]
    if is_object_spec(resolved):
        obj = load_object(resolved, "task")
    else:
        try:
            obj = entry_point_tasks()[resolved].load()
        except KeyError:
            raise ValueError(f"unknown task '{spec}'") from None
        except Exception as error:  # the package's own import failed: say which entry point
            raise ValueError(f"task entry point {spec} ({ENTRY_POINT_GROUP}) failed to load: {error}") from error
    if not isinstance(obj, Task):
        raise ValueError(
            f"task spec {spec} names a {type(obj).__name__}, not a lowvram_r1.tasks.Task: point it at the Task "
            "object (e.g. TASK = Task(name=..., ...)); see docs/own-task.md"
        )
    if obj.name in builtin or obj.name.startswith("rg:"):
        raise ValueError(
            f"task spec {spec}: its name '{obj.name}' is a built-in task's; give your Task another name "
            "(lowvram-r1 tasks lists the built-in ones)"
        )
    _LOADED[resolved] = obj
    logger.debug("task %s loaded from %s", obj.name, resolved)
    return obj


def task_label(name: str, task: Task) -> str:
    """A short, path-free name for run folders and tiny-model caches: the task's own name for a spec."""
    return task.name if is_object_spec(name) else name.replace(":", "-")
