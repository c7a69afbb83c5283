"""The shipped recipes (``configs/``) and the one a bare ``lowvram-r1 train --task T`` starts from.

A recipe is ``configs/<task>/<tier>.yaml``, tuned for one task on one size of GPU. With no ``--model`` and no
``--config``, ``train`` picks the recipe for the detected GPU's memory tier (the T4 recipe on a T4 with Unsloth),
and the built-in tiny model on a machine without a CUDA GPU:

    path, reason = default_recipe("gsm8k", hardware)   # (configs/gsm8k/8gb.yaml, "an 8 GB GPU (...)")

A pure function of the hardware description, so tests run it against simulated cards. Torch-free.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import lowvram_r1

TIERS_GB = (6, 8, 12, 16, 24)  # the recipe folders' memory tiers, nominal GB as cards are sold
FALLBACK_TASK = "gsm8k"  # tasks without recipes of their own borrow its model and memory settings
T4_RECIPE = "t4-unsloth-16gb"
ACCELERATE_CONFIGS = "accelerate"  # configs/accelerate/: launcher configs for --num-processes, not recipes


def recipes_dir() -> Path | None:
    """``configs/`` of the source checkout the package runs from (editable install), else of the working folder."""
    for candidate in (Path(lowvram_r1.__file__).resolve().parent.parent / "configs", Path.cwd() / "configs"):
        if candidate.is_dir():
            return candidate
    return None


def recipe_files(root: Path) -> list[Path]:
    """Every recipe YAML under ``root`` (``configs/``), recursively; ``configs/accelerate/`` holds accelerate's
    launcher configs (``--accelerate-config``), not recipes, and is left out."""
    launcher_configs = root / ACCELERATE_CONFIGS
    return sorted(p for p in root.rglob("*.y*ml") if p.is_file() and launcher_configs not in p.parents)


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
    """The recipe a bare ``train --task task`` uses on ``hardware`` (a ``backends.hardware.Hardware``), and why.

    ``None`` means no recipe: the built-in tiny model (no CUDA GPU), or no ``configs/`` folder to pick from.
    """
    if not hardware.cuda:
        return None, (
            "no CUDA GPU: the built-in tiny model (offline, CPU); pass --model NAME or --config configs/... "
            "for a real model"
        )
    root = recipes_dir()
    if root is None:
        return None, "no configs/ folder found (run from the lowvram-r1 checkout to use its recipes): plain defaults"
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
