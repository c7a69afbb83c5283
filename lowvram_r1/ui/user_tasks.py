"""The user tasks the panel offers: those given when it starts (``lowvram-r1 ui --task SPEC``) and those installed
packages register (entry-point group ``lowvram_r1.tasks``) — never a path typed into the web form, since whoever
reaches the panel would run that file's code here.

    register(["./my_task.py:TASK"])     # at start, loaded and checked (a bad spec stops the panel from starting)
    choices()                           # the Task dropdown: built-ins, then ("my_task (/abs/my_task.py:TASK)", spec)
    check_allowed(name)                 # a form value: a built-in, an rg: name, or one of the above
"""

from __future__ import annotations

from collections.abc import Sequence

from lowvram_r1.specs import is_object_spec, resolve_spec

_GIVEN: list[str] = []  # resolved specs given at start, in order


def register(specs: Sequence[str]) -> None:
    """Load each spec once now (errors before the panel serves), and offer it in the form."""
    from lowvram_r1.tasks import get_task

    for spec in specs:
        resolved = resolve_spec(spec)
        get_task(resolved)
        if resolved not in _GIVEN:
            _GIVEN.append(resolved)


def allowed() -> list[str]:
    from lowvram_r1.tasks import TASKS
    from lowvram_r1.tasks.user import installed_task_names

    return [*_GIVEN, *installed_task_names(TASKS)]


def choices() -> list[tuple[str, str]]:
    """(label, value) pairs for the Task dropdown."""
    from lowvram_r1.tasks import TASKS, get_task

    given = [(f"{get_task(spec).name} ({spec})", spec) for spec in _GIVEN]
    installed = [(name, name) for name in allowed() if name not in _GIVEN]
    return [(name, name) for name in sorted(TASKS)] + given + installed


def check_allowed(name: str) -> None:
    """Refuse a form's task that names code the panel was not started with."""
    from lowvram_r1.tasks.user import entry_point_tasks

    if (is_object_spec(name) or name in entry_point_tasks()) and name not in allowed():
        raise ValueError(
            f"the panel trains only the tasks it was started with: restart it with `lowvram-r1 ui --task {name}` "
            "to offer this one"
        )
