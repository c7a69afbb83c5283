"""One stage runner for GRPO, cold-start SFT and every pipeline stage: the run lifecycle, the one pre-flight and the
load. A stage provides only what differs: its rows (the task's, or SFT's traces), "build the trainer and train",
and what it does after training (GRPO's held-out evals).

    result = run_stage(plan, Stage("sft", train=train_sft_stage, rows=traces), hardware=hardware)

``plan`` is the run resolved once (:func:`lowvram_r1.run_plan.resolve`: by the CLI, or by ``engine.train`` /
``train_sft`` from a bare config); the stage's settings and the memory fit make new plans from it with
``plan.with_config`` (the same task, no new look-up). In order, for every stage, the pre-flight of
:mod:`lowvram_r1.train.prepare` in two calls: ``settle_stage`` (the backend, the processes, the stage's settings
and their combinations) → claim the run folder (``run_dir_for``: a new run never lands on an old one, ``--resume``
needs a checkpoint; ``RunSession``: links, foreign or busy folders refused) → ``prepare`` (reward list, rows, model
reference and its context, the memory plan, the backend's refusals, hardware options, prompt lengths) →
``backend.load`` → ``session.start`` → the stage trains → adapter saved → finished.
Every check comes before any weights load; a failure is a ``ValueError`` saying what to do (exit 2 in the CLI).

What a check means for a stage that generates nothing (SFT, ``Stage.generates=False``): :mod:`.prepare`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lowvram_r1 import config as config_module
from lowvram_r1.models.hardware import Hardware, detect_hardware
from lowvram_r1.run_plan import RunPlan
from lowvram_r1.runs import RunDir, checkpoint_step
from lowvram_r1.runs.lifecycle import RunSession
from lowvram_r1.train.distributed import Processes
from lowvram_r1.train.prepare import MemoryRequest, Prepared, prepare, run_dir_for, settle_stage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageRun:
    """What the runner hands a stage once the model is loaded and the run has started."""

    prepared: Prepared  # prepared.plan: the run as checked (and fitted) for this stage; prepared.cfg its config
    backend: Any
    loaded: Any  # the backend's Loaded: model, tokenizer, peft config, rollout function
    hardware: Hardware
    session: RunSession
    processes: Processes
    resume_from: Path | None


@dataclass(frozen=True)
class Trained:
    """What a stage hands back: its trainer (the runner saves the adapter), the final step, and summary fields."""

    trainer: Any
    final_step: int
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One kind of training stage: ``name`` is its stage in status.json; ``train`` builds the trainer and trains."""

    name: str
    train: Callable[[StageRun], Trained]
    rows: Callable[[RunPlan], list[dict]] | None = None  # None: the task's own rows (and its eval split)
    default_dir: Path | None = None  # the run folder without --output-dir (None: runs/<task>-<model>-<time>)
    generates: bool = True  # False: no rollouts (SFT), see the module docstring
    status: Callable[[Prepared, Processes], dict[str, Any]] = lambda prepared, processes: {
        "task": prepared.task.name,
        "processes": processes.count,
    }  # status.json's fields beside model and max_steps


@dataclass(frozen=True)
class StageResult:
    """What ``run_stage`` returns: the run folder, the stage's ``Trained`` and this process's place."""

    run: RunDir
    trained: Trained
    processes: Processes


def run_stage(
    plan: RunPlan,
    stage: Stage,
    *,
    hardware: Hardware | None = None,
    gpu_memory: str | None = None,
    auto_fit: bool = False,
    force: bool = False,
) -> StageResult:
    """Run ``stage`` on the plan in the run lifecycle after the one pre-flight (module docstring); raises
    ``ValueError`` on bad input before any weights load."""
    from lowvram_r1.backends.registry import get_backend

    hardware = hardware or plan.hardware or detect_hardware()
    processes = Processes.start(cpu=not hardware.cuda) if stage.generates else Processes()
    plan = settle_stage(
        replace(plan, hardware=hardware),
        processes.count,
        stage=stage.name,
        generates=stage.generates,
        announce=processes.main,
    )
    run = processes.from_main(lambda: run_dir_for(plan, stage.default_dir))  # main's clock names a default folder
    with RunSession(run, resume=plan.cfg.run.resume, stage=stage.name, main=processes.main) as session:
        backend = get_backend(plan.backend)
        logger.info("backend: %s (%s)", plan.backend, plan.backend_reason)
        memory = MemoryRequest(hardware.memory_gb if hardware.cuda else None, gpu_memory, auto_fit, force)
        prepared = prepare(
            plan,
            session.run,
            backend,
            memory,
            rows=stage.rows,
            rollouts=stage.generates,
            warnings=stage.generates and processes.main,  # one voice
        )
        plan = prepared.plan  # fitted to the memory budget
        loaded = backend.load(plan, prepared.model_ref or plan.model_path(), rollouts=stage.generates)
        cfg = plan.cfg
        status = {**stage.status(prepared, processes), "model": cfg.model.name, "max_steps": cfg.training.max_steps}
        resume_from = processes.from_main(lambda: session.start(config_module.dump(cfg), **status))
        if not processes.main:
            session.start("")  # writes nothing: catches SIGTERM like the main process
        trained = stage.train(StageRun(prepared, backend, loaded, hardware, session, processes, resume_from))
        save_adapter(trained.trainer, loaded.tokenizer, session.run.adapter, processes)
        session.finish(trained.final_step, cfg.training.max_steps)
        processes.wait()  # the adapter and the final status are written before any process reports
    return StageResult(session.run, trained, processes)


def save_adapter(trainer: Any, tokenizer: Any, folder: Path, processes: Processes) -> None:
    """The final adapter and tokenizer, written by the main process. Under DeepSpeed (ZeRO-3 shards the weights)
    every process takes part in the trainer's own ``save_model``, which gathers them and lets the main one write.
    The folder must be a real one with no link in it (the libraries would write through a link)."""
    from lowvram_r1.runs.files import check_tree

    check_tree(folder)
    if getattr(trainer, "is_deepspeed_enabled", False):
        trainer.save_model(str(folder))
    elif processes.main:
        trainer.model.save_pretrained(folder)
    if processes.main:
        tokenizer.save_pretrained(folder)


def train_or_load(trainer: Any, resume_from: Path | None, max_steps: int) -> int:
    """``trainer.train()`` (from ``resume_from`` when resuming); returns the final global step. Every stage uses it.

    A run killed after its last checkpoint has nothing left to train, and transformers would still take one more
    step when resumed at max_steps: the checkpoint's adapter is loaded instead of calling train().
    """
    if resume_from is not None and checkpoint_step(resume_from) >= max_steps:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(trainer.model, load_file(str(resume_from / "adapter_model.safetensors")))
        return checkpoint_step(resume_from)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    return trainer.state.global_step
