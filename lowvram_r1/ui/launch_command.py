"""From form values to the argument list of a ``lowvram-r1 train`` process (started by ``controls.Launcher``).

    request = LaunchRequest(run_name="demo", recipe="cpu-demo", values={"max_steps": 20})
    launch = build_launch(request, runs_root=Path("runs"), configs_root=PACKAGE_RECIPES)
    launch.display     # 'lowvram-r1 train --config cpu-demo --max-steps=20 --output-dir=runs/demo ...'

Safety: every form value maps to one known config field and travels as one ``--flag=value`` argument of an
argument list (never a shell), so a value that starts with ``--`` or holds spaces stays that field's value; the
config dataclasses validate everything before anything starts; run names go through ``runs.check_run_name``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowvram_r1 import config
from lowvram_r1.recipes import PACKAGE_RECIPES, recipe_files, recipe_names
from lowvram_r1.run_plan import RunPlan, resolve
from lowvram_r1.runs import RunDir, check_run_name
from lowvram_r1.ui import user_tasks

# Form knob -> config key ("section.field"). Only these travel from the form to the command line.
KNOBS: dict[str, str] = {
    "task": "task.name",
    "model": "model.name",
    "num_generations": "training.num_generations",
    "batch_size": "training.per_device_train_batch_size",
    "learning_rate": "training.learning_rate",
    "max_steps": "training.max_steps",
    "max_completion_length": "generation.max_completion_length",
    "lora_r": "lora.r",
    "beta": "training.beta",
    "loss_type": "training.loss_type",
    "num_processes": "run.num_processes",  # shown on machines with several GPUs: one training process per GPU
}


@dataclass(frozen=True)
class LaunchRequest:
    run_name: str
    recipe: str | None = None  # one of list_recipes(configs_root), or None for the defaults
    values: Mapping[str, Any] = field(default_factory=dict)  # KNOBS name -> value; None / "" = keep the recipe's


@dataclass(frozen=True)
class Launch:
    args: list[str]  # after ``lowvram-r1``: what the process gets
    run_dir: Path
    cfg: config.RunConfig

    @property
    def display(self) -> str:
        """The exact command, quoted for a POSIX shell (copy-paste gives the same argument list)."""
        return shlex.join(["lowvram-r1", *self.args])


def list_recipes(configs_root: Path) -> list[str]:
    """The shipped recipes by name (``gsm8k/8gb``) when ``configs_root`` is the package's recipes folder; another
    folder's recipe YAMLs, recursively, as paths relative to the working directory."""
    if not configs_root.is_dir():
        return []
    if configs_root.resolve() == PACKAGE_RECIPES:
        return list(recipe_names())
    return [str(p) for p in recipe_files(configs_root)]


def recipe_config(recipe: str | None) -> config.RunConfig:
    return config.load(recipe) if recipe else config.RunConfig()


def knob_values(cfg: config.RunConfig) -> dict[str, Any]:
    """The form's knobs as a config sets them (what the form shows when a recipe is picked)."""
    return {name: _get(cfg, key) for name, key in KNOBS.items()}


def _get(cfg: config.RunConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _flag(key: str) -> str:
    section, name = key.split(".")
    return next(config.flag_name(s, f) for s, f in config.all_fields() if s == section and f.name == name)


def _check_text(knob: str, value: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{knob}: control characters (newlines, tabs) are not allowed")
    if value.startswith("-"):
        raise ValueError(f"{knob} {value!r} cannot start with '-'; for a local folder write ./{value}")


def form_config(
    recipe: str | None, values: Mapping[str, Any], configs_root: Path, output_dir: str | None = None
) -> tuple[RunPlan, dict[str, Any]]:
    """The run the form describes (its config validated by the dataclasses, then resolved: ``plan.cfg``) and the
    overrides that differ from the recipe."""
    if recipe is not None and recipe not in list_recipes(configs_root):
        raise ValueError(f"recipe {recipe!r} is not a YAML under {configs_root}/: pick one from the list")
    base = recipe_config(recipe)
    overrides: dict[str, Any] = {}
    for knob, value in values.items():
        if knob not in KNOBS:
            raise ValueError(f"unknown form field {knob!r}; known: {', '.join(KNOBS)}")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, str):
            value = value.strip()
            _check_text(knob, value)
            if knob == "task":
                user_tasks.check_allowed(value)  # never code named in the form, only tasks given at start
        current = _get(base, KNOBS[knob])
        if isinstance(current, int) and isinstance(value, float) and value.is_integer():
            value = int(value)  # number widgets hand integers over as floats
        if value != current:
            overrides[KNOBS[knob]] = value
    extra = {"run.output_dir": output_dir} if output_dir else {}
    cfg = config.load(recipe, {**overrides, **extra})  # the dataclasses' own checks
    plan = resolve(cfg)  # a known task, the recipe's options fit it, its reward weights count its rewards
    return plan, overrides


def build_launch(request: LaunchRequest, runs_root: Path, configs_root: Path) -> Launch:
    """Validate the form through the config dataclasses and build the argument list; raises ``ValueError``."""
    name = check_run_name(request.run_name.strip())
    recipe = request.recipe or None
    run_dir = runs_root / name
    plan, overrides = form_config(recipe, request.values, configs_root, str(run_dir))
    if run_dir.exists():
        raise ValueError(f"{run_dir} already exists: choose another run name (or resume it from the Runs tab)")
    args = ["train"] + (["--config", recipe] if recipe else [])
    # --flag=value keeps a value that begins with '-' from being read as another flag
    args += [f"--{_flag(key)}={_format(value)}" for key, value in overrides.items()]
    args += [f"--output-dir={run_dir}", "--no-progress"]
    return Launch(args, run_dir, plan.cfg)


def _format(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def resume_launch(run_dir: Path) -> Launch:
    """The command that continues a run from its last complete checkpoint."""
    run = RunDir(run_dir)
    check_run_name(run.name)
    if not run.is_run():
        raise ValueError(f"{run_dir} is not a lowvram-r1 run: the panel resumes only its runs")
    if run.last_checkpoint() is None:
        raise ValueError(f"{run_dir} has no complete checkpoint yet: nothing to resume from")
    cfg = config.load(run.config, {"run.output_dir": str(run_dir), "run.resume": True})
    return Launch(["train", f"--output-dir={run_dir}", "--resume", "--no-progress"], run_dir, cfg)
