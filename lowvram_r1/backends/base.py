"""What a backend is: the small protocol ``engine.train`` and the pipeline stages talk to, so they hold no
``if backend == ...`` branch. A backend owns how the model loads and how it generates; TRL owns the training.

A backend provides (see :class:`Backend`):
- ``name``, ``imports_first`` (must its library come before transformers?) and ``available(cfg, cuda)``: may
  ``--backend auto`` pick it on this machine, and why (cheap: it must not import its library);
- ``check(plan, tokenizer_source)``: refuse, before any weights load, what it cannot run (it may import
  its library here: Unsloth must be imported before transformers / trl / peft);
- ``load(plan, model_path, rollouts)`` -> :class:`Loaded`: model, tokenizer, the peft config TRL should
  wrap the model with (None when the model carries its adapter already) and the rollout function for
  ``GRPOTrainer(rollout_func=...)`` (None: TRL's own generation);
- ``held_out_generator(loaded, trainer)``: how held-out evaluation generates (None: transformers ``generate``);
- ``precision(cfg, hardware)``: the trainer's ``bf16`` / ``fp16`` autocast flags.

New backends are one file with a :class:`Backend` subclass plus one line in :mod:`lowvram_r1.backend_names`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lowvram_r1.config import RunConfig
from lowvram_r1.models.hardware import Hardware, mixed_precision
from lowvram_r1.run_plan import RunPlan

Generator = Callable[[Sequence[Any], int, float], list[str]]  # (prompts, max_new_tokens, temperature) -> texts


@dataclass
class Loaded:
    """What a backend's ``load`` hands the trainer."""

    model: Any
    tokenizer: Any
    peft_config: Any | None  # GRPOTrainer(peft_config=...); None when the model has its adapter already
    rollout_func: Any | None = None  # GRPOTrainer(rollout_func=...); None: TRL generates


class Backend:
    """Base class of the backends; subclasses override what differs (see the module docstring)."""

    name = ""
    imports_first = False  # True: its library must be imported before transformers / trl / peft (Unsloth's patches)

    @classmethod
    def available(cls, cfg: RunConfig, cuda: bool) -> tuple[bool, str]:
        raise NotImplementedError

    def check(self, plan: RunPlan, tokenizer_source: str) -> None:
        """Refuse what this backend cannot run, before any weights load (default: nothing to refuse)."""

    def load(self, plan: RunPlan, model_path: str, rollouts: bool = True) -> Loaded:
        raise NotImplementedError

    def held_out_generator(self, loaded: Loaded, trainer: Any) -> Generator | None:
        return None

    def precision(self, cfg: RunConfig, hardware: Hardware) -> dict[str, bool]:
        return mixed_precision(cfg, hardware)
