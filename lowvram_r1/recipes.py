"""The shipped recipes (package data, ``lowvram_r1/configs/``) and the one a bare ``lowvram-r1 train --task T``
starts from.

A recipe is ``<task>/<tier>.yaml`` inside the installed package, tuned for one task on one size of GPU, and is
named by that path without ``.yaml``: ``gsm8k/8gb``, ``cpu-demo``. ``--config`` takes a name or a file. With no
``--model`` and no ``--config``, ``train`` picks the recipe for the detected GPU's memory tier (the T4 recipe on a
T4 with Unsloth), and the built-in tiny model on a machine without a CUDA GPU:

    path, reason = default_recipe("gsm8k", hardware)   # (.../lowvram_r1/configs/gsm8k/8gb.yaml, "an 8 GB GPU (...)")
    recipe_path("gsm8k/8gb")                           # the same file, by name

``accelerate/`` beside them holds accelerate's launcher configs (``--accelerate-config ddp``). A pure function of
the hardware description, so tests run it against simulated cards. Torch-free.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import lowvram_r1

TIERS_GB = (6, 8, 12, 16, 24)  # the recipe folders' memory tiers, nominal GB as cards are sold
FALLBACK_TASK = "gsm8k"  # tasks without recipes of their own borrow its model and memory settings
T4_RECIPE = "t4-unsloth-16gb"
ACCELERATE_CONFIGS = "accelerate"  # configs/accelerate/: launcher configs for --num-processes, not recipes
PACKAGE_RECIPES = Path(lowvram_r1.__file__).resolve().parent / "configs"  # package data: travels in the wheel


def recipes_dir() -> Path | None:
    """The recipes folder inside the installed package (``None`` only if the installation lost it)."""
    return PACKAGE_RECIPES if PACKAGE_RECIPES.is_dir() else None


def recipe_files(root: Path) -> list[Path]:
    """Every recipe YAML under ``root`` (``configs/``), recursively; ``configs/accelerate/`` holds accelerate's
    launcher configs (``--accelerate-config``), not recipes, and is left out."""
    launcher_configs = root / ACCELERATE_CONFIGS
    found = [p for p in root.rglob("*.y*ml") if p.is_file() and launcher_configs not in p.parents]
    return sorted(found, key=_natural_key)


def _natural_key(path: Path) -> list[tuple[int, int | str]]:
    """Sort key reading the digits in a path as numbers: ``gsm8k/6gb`` before ``gsm8k/12gb``."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", path.as_posix())]


def recipe_names(root: Path | None = None) -> dict[str, Path]:
    """Every shipped recipe by name (its path under the recipes folder, no ``.yaml``): ``{"gsm8k/8gb": path}``."""
    root = root or recipes_dir()
    if root is None:
        return {}
    return {p.relative_to(root).with_suffix("").as_posix(): p for p in recipe_files(root)}


def _bare_name(spec: str, prefixes: tuple[str, ...]) -> str:
    """``spec`` without a checkout-era folder (``configs/``, also after a path: ``/src/lowvram-r1/configs/``) and
    without ``.yaml`` / ``.yml``."""
    name = spec.strip().replace("\\", "/")
    for prefix in prefixes:
        head, found, tail = name.rpartition(prefix)
        if found and (not head or head.endswith("/")):
            name = tail
            break
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name past the OS's limits: not a file; the caller's own read says why
        return False


def recipe_path(spec: str | Path) -> Path | None:
    """The shipped recipe ``spec`` names (``gsm8k/8gb``, ``gsm8k/8gb.yaml`` or the old ``configs/gsm8k/8gb.yaml``),
    or ``None``. Only names of shipped recipes resolve: nothing outside the recipes folder can be reached."""
    return recipe_names().get(_bare_name(str(spec), ("lowvram_r1/configs/", "configs/")))


def resolve_config(spec: str | Path) -> Path:
    """``--config``'s file: an existing file as given (a local file wins), else the shipped recipe of that name.

    A spec that is neither is returned unchanged: the config loader then says it does not exist.
    """
    path = Path(spec)
    if _is_file(path):
        return path
    return recipe_path(spec) or path


def accelerate_configs() -> dict[str, Path]:
    """The shipped accelerate launcher configs by name: ``{"ddp": path, "deepspeed-zero2": ..., ...}``."""
    root = recipes_dir()
    folder = root / ACCELERATE_CONFIGS if root else None
    if folder is None or not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def accelerate_config_path(spec: str | Path) -> Path:
    """``--accelerate-config``'s file: an existing file as given, else the shipped config of that name (``ddp``,
    ``deepspeed-zero2``, ``accelerate/ddp`` or the old ``configs/accelerate/ddp.yaml``); unchanged otherwise."""
    path = Path(spec)
    if _is_file(path):
        return path
    prefixes = ("lowvram_r1/configs/accelerate/", "configs/accelerate/", "accelerate/")
    return accelerate_configs().get(_bare_name(str(spec), prefixes), path)


def memory_tier(memory_gb: float) -> int:
    """The largest tier a card of ``memory_gb`` (as the driver reports it, GiB) is sold as.

    Drivers report a little less than the box says (a 16 GB T4 shows 14.7 GiB, an 8 GB card 7.6-8.0), hence the
    10% slack; cards below the smallest tier get it (the planner then refuses or auto-fits).
    """
    fitting = [tier for tier in TIERS_GB if memory_gb * 1.1 >= tier]
    return fitting[-1] if fitting else TIERS_GB[0]


def is_t4(hardware: Any) -> bool:
    return "T4" in hardware.name.upper() or (hardware.compute_capability == (7, 5) and 14 <= hardware.memory_gb <= 16)


def default_recipe(task: str, hardware: Any, unsloth_installed: bool | None = None) -> tuple[Path | None, str]:
    """The recipe a bare ``train --task task`` uses on ``hardware`` (a ``models.hardware.Hardware``), and why.

    ``None`` means no recipe: the built-in tiny model (no CUDA GPU), or an installation without its recipes.
    """
    if not hardware.cuda:
        return None, (
            "no CUDA GPU: the built-in tiny model (offline, CPU); pass --model NAME or --config RECIPE "
            "(lowvram-r1 recipes lists them) for a real model"
        )
    root = recipes_dir()
    if root is None:
        return None, f"the package's recipes folder {PACKAGE_RECIPES} is missing (reinstall lowvram-r1): plain defaults"
    if unsloth_installed is None:
        unsloth_installed = importlib.util.find_spec("unsloth") is not None
    folder = task if (root / task).is_dir() else FALLBACK_TASK
    tier = memory_tier(hardware.memory_gb)
    name = f"{tier}gb"
    card = f"{hardware.name}, {hardware.memory_gb:.1f} GiB"
    if is_t4(hardware) and unsloth_installed and (root / folder / f"{T4_RECIPE}.yaml").is_file():
        name, why = T4_RECIPE, f"a T4 with Unsloth ({card})"
    else:
        why = f"a {tier} GB GPU ({card})"
    path = root / folder / f"{name}.yaml"
    if not path.is_file():
        return None, f"no recipe {path} for {why}: plain defaults"
    borrowed = "" if folder == task else f"; {task} has no recipes of its own, so {folder}'s model and memory settings"
    return path, f"{why}{borrowed}"
