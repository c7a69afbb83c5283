"""Specs that name Python objects outside the package: ``./file.py:NAME`` or ``module.path:NAME`` (torch-free).

    resolve_spec("./my_task.py:TASK")   # "/home/me/work/my_task.py:TASK": stored so in config.yaml
    load_object("./r.py:fn", "reward")  # the object, or a ValueError saying what to do

A task spec (``--task``) and a reward spec (``--reward``) are resolved here once, so ``--resume`` from another
folder, every process of ``--num-processes`` and every pipeline stage import the same file. A file's folder goes
on ``sys.path`` (the file may import its neighbours), and its module is registered in ``sys.modules`` under a
stable name, so the objects it defines pickle by reference.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any


def is_object_spec(text: str) -> bool:
    """``path.py:NAME`` or ``module:NAME`` (not ``rg:<dataset>``, the reasoning-gym prefix)."""
    head, sep, tail = str(text).rpartition(":")
    return bool(sep and head and tail) and not str(text).startswith("rg:") and tail.isidentifier()


def is_file_spec(text: str) -> bool:
    head = str(text).rpartition(":")[0]
    return is_object_spec(text) and (head.endswith(".py") or "/" in head or "\\" in head)


def resolve_spec(text: str) -> str:
    """A file spec with its path made absolute (from the current folder); anything else unchanged."""
    if not is_file_spec(text):
        return text
    head, _, tail = str(text).rpartition(":")
    return f"{Path(head).expanduser().resolve()}:{tail}"


def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"lowvram_r1_user_{stem}_{digest}"  # no dots: pickle finds it in sys.modules as it is


def _import_file(path: Path, what: str, spec: str) -> Any:
    if not path.is_file():
        raise ValueError(f"{what} spec {spec}: file {path} does not exist (write it, or fix the path before ':')")
    if path.suffix != ".py":
        raise ValueError(f"{what} spec {spec}: {path} is not a Python file (.py)")
    name = _module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the file may import its neighbours (a task file its reward file)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"{what} spec {spec}: {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise ValueError(f"{what} spec {spec}: importing {path} failed: {type(error).__name__}: {error}") from error
    return module


def load_object(spec: str, what: str) -> Any:
    """The object a ``file.py:NAME`` or ``module:NAME`` spec names; ``what`` ("task", "reward") words the errors."""
    if not is_object_spec(spec):
        raise ValueError(f"{what} spec {spec!r} must be ./file.py:NAME or package.module:NAME")
    head, _, attribute = str(spec).rpartition(":")
    if is_file_spec(spec):
        module = _import_file(Path(head).expanduser().resolve(), what, spec)
    else:
        try:
            module = importlib.import_module(head)
        except ImportError as error:
            raise ValueError(
                f"{what} spec {spec}: cannot import module {head} ({error}); for a file write ./{head}.py:{attribute}"
            ) from error
    if not hasattr(module, attribute):
        found = ", ".join(n for n in sorted(vars(module)) if not n.startswith("_"))[:300]
        raise ValueError(f"{what} spec {spec}: {head} has no attribute {attribute} (it defines: {found or 'nothing'})")
    return getattr(module, attribute)
