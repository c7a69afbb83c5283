"""The run, resolved once: ``resolve(cfg, hardware)`` turns a :class:`~lowvram_r1.config.RunConfig` (names and
numbers) into a frozen :class:`RunPlan` (objects) that every layer below the entry points reads instead of
looking the task up again.

    plan = resolve(config.load("cpu-demo"), detect_hardware())
    plan.task, plan.options, plan.prompt_format      # the Task object, its resolved options, the prompt format
    plan.rows("test", 200)                           # the task's rows as the run builds them
    plan.budget.context                              # prompt + completion + what the environment inserts
    plan.tiny                                        # the built-in model's TinySpec (None for any other model)
    plan.architecture()                              # its shapes, as the memory planner reads them
    plan = plan.with_config(fitted_cfg)              # the same task, re-derived for a changed config (auto-fit)
    replace(plan, backend="hf", backend_reason="...")    # the backend chosen a floor up (or resolve(..., backend=))

Built once per run at its entry point (a CLI command, the panel's form, ``engine.train`` / ``train_sft`` given a
bare config), and handed to every stage: the task (a preset, ``rg:<name>`` or the user's own spec) is found here
and only here, with the tiny model's options laid
under the config's, the reward weights counted against its rewards, and the options checked. The backend choice
is made a floor up (the backends' ``available`` checks live there) and handed in: ``resolve(cfg, hardware,
backend=(name, reason))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from lowvram_r1.config import RunConfig, require
from lowvram_r1.models.hardware import Hardware
from lowvram_r1.models.shapes import Architecture, architecture
from lowvram_r1.models.source import resolve_model
from lowvram_r1.models.tiny import TinySpec, context_for, ensure_tiny_model, ensure_tiny_tokenizer, spec_for
from lowvram_r1.tasks import Split, Task, get_task
from lowvram_r1.tasks.base import PromptFormat
from lowvram_r1.tasks.user import task_label


@dataclass(frozen=True)
class SequenceBudget:
    """The token lengths of one sequence: the prompt, the completion, and what the task's environment inserts into
    a completion at most (search tasks: max_turns x top_k retrieved passages; 0 for single-turn tasks)."""

    prompt: int
    completion: int
    inserted: int = 0

    @property
    def generated(self) -> int:
        """A completion as the engine holds it: the model's tokens plus the environment's."""
        return self.completion + self.inserted

    @property
    def context(self) -> int:
        return self.prompt + self.completion + self.inserted


@dataclass(frozen=True)
class RunPlan:
    """One stage's run, resolved: what the config names, as objects. Frozen: a changed config is a new plan."""

    cfg: RunConfig  # the config, with the tiny model's task options laid under its own
    task: Task
    options: Mapping[str, Any]  # the task's options with its defaults filled in, checked
    prompt_format: PromptFormat
    budget: SequenceBudget
    hardware: Hardware | None = None  # None: planning for a budget, not for this machine
    backend: str | None = None  # chosen a floor up (backends.registry.resolve_backend); None until then
    backend_reason: str = field(default="", compare=False)

    @cached_property
    def tiny(self) -> TinySpec | None:
        """The built-in tiny model's spec (None for any other model), worked out where a stage reads it: a task the
        tiny model cannot be built for is refused then (``train.prepare``: before its data is fetched), while
        ``plan`` and ``score`` of such a task still run."""
        return tiny_spec(self.cfg, self.task, self.budget)

    @property
    def label(self) -> str:
        """The task's short, path-free name (run folders, tiny-model caches)."""
        return task_label(self.cfg.task.name, self.task)

    def rows(self, split: str, size: int, *, seed_offset: int = 0) -> list[dict]:
        """``size`` rows of the task's ``split`` ("train" or "test") as this run builds them: its data seed (plus
        ``seed_offset``: another draw of the same generator), data file, resolved options and prompt format."""
        t = self.cfg.task
        chosen = Split(split, size, t.data_seed + seed_offset, t.data_path, dict(self.options))
        return self.task.build_rows(chosen, self.prompt_format)

    def with_config(self, cfg: RunConfig) -> RunPlan:
        """This plan for a changed config (auto-fit, a stage's own settings): the same task, re-derived."""
        require(cfg.task.name == self.cfg.task.name, "a plan's task is fixed: resolve the other task afresh")
        fresh = derive(cfg, self.task, self.hardware)
        return replace(fresh, backend=self.backend, backend_reason=self.backend_reason)

    def architecture(self) -> Architecture:
        """The model's shapes the memory planner reads (``ValueError`` for a model outside the table and with no
        config.json at hand: asked for only where a plan needs it)."""
        return architecture(self.cfg.model.name)

    def model_path(self) -> str:
        """A loadable model reference: the tiny model's folder (built on first use), a checked folder or hub id."""
        if self.tiny is None:
            return resolve_model(self.cfg)
        return str(ensure_tiny_model(self.tiny, self.task))

    def tokenizer_path(self) -> str:
        """Where the tokenizer comes from: for the tiny model its tokenizer alone (seconds), so that lengths are
        checked before the model is built; else the model reference."""
        if self.tiny is None:
            return self.model_path()
        return str(ensure_tiny_tokenizer(self.tiny, self.task))


def resolve(cfg: RunConfig, hardware: Hardware | None = None, *, backend: tuple[str, str] | None = None) -> RunPlan:
    """The run ``cfg`` describes, resolved: the task found once (``ValueError`` naming the choices otherwise), its
    options checked, the reward weights counted, the sequence budget worked out."""
    task = get_task(cfg.task.name)
    if cfg.model.name == "tiny" and task.tiny_options:  # under the config's own options: a recipe or flag wins
        cfg = replace(cfg, task=replace(cfg.task, options={**task.tiny_options, **cfg.task.options}))
    name, reason = backend or (None, "")
    return replace(derive(cfg, task, hardware), backend=name, backend_reason=reason)


def derive(cfg: RunConfig, task: Task, hardware: Hardware | None) -> RunPlan:
    """Everything the plan holds, from ``cfg`` and its task object (no lookup)."""
    t, g = cfg.task, cfg.generation
    if t.reward_weights is not None:
        expected = len(task.reward_funcs)
        require(
            len(t.reward_weights) == expected,
            f"task {t.name} has {expected} rewards but reward_weights has {len(t.reward_weights)} values",
        )
    options = task.resolve_options(t.options)  # an unknown or ill-typed option: refused, listing the valid ones
    inserted = task.environment_tokens(options)
    budget = SequenceBudget(g.max_prompt_length, g.max_completion_length, inserted)
    fmt = PromptFormat(t.prompt_style, t.system_prompt, t.assistant_prefill)
    return RunPlan(cfg, task, options, fmt, budget, hardware)


def tiny_spec(cfg: RunConfig, task: Task, budget: SequenceBudget) -> TinySpec | None:
    """The built-in tiny model's spec for this run (None for another model): its task settings, and a context that
    holds the run's lengths. A task the tiny model cannot be built for is refused here, before any data is fetched."""
    if cfg.model.name != "tiny":
        return None
    t = cfg.task
    sizes = {**task.tiny_sizes, "context": context_for(budget.prompt, budget.generated)}
    label = task.name if "/" in t.name or "\\" in t.name else None  # a task file: its name in the cache key
    options = dict(t.options)
    return spec_for(t.name, t.data_seed, options, t.prompt_style, t.system_prompt, t.data_path, label=label, **sizes)


def plan_of(cfg_or_plan: RunConfig | RunPlan, hardware: Hardware | None = None) -> RunPlan:
    """A plan from either: the public functions that take a config (the notebook, the GPU kit, the benches) resolve
    it here; a plan passes through."""
    return cfg_or_plan if isinstance(cfg_or_plan, RunPlan) else resolve(cfg_or_plan, hardware)
