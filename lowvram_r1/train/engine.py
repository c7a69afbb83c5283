"""``train(cfg)``: one GRPO run, top to bottom. The CLI, the panel and the notebook all end up here.

    from lowvram_r1 import config
    from lowvram_r1.train import engine
    summary = engine.train(config.load("cpu-demo"))

It reads as the recipe: claim the run folder → prepare (rows, model reference) → plan memory → pick the backend
and let it refuse what it cannot run → backend.load → TRL's GRPOTrainer with the RunRecorder → held-out eval,
train, held-out eval → save. Everything that can be checked is checked before any weights load; what differs
between backends lives in :mod:`lowvram_r1.backends`, what every stage shares about the run folder (one trainer,
status, stop, resume) in :mod:`lowvram_r1.runs.lifecycle`.

Under ``accelerate launch`` / torchrun (``lowvram-r1 train --num-processes N`` starts one) every process runs this
same function: the main process decides the run folder and writes it, the others train beside it and generate
their share of the held-out completions (:mod:`lowvram_r1.train.distributed`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from lowvram_r1 import config as config_module
from lowvram_r1.backends.registry import backend_class, get_backend, resolve_backend
from lowvram_r1.config import RunConfig
from lowvram_r1.models.hardware import Hardware, detect_hardware
from lowvram_r1.models.source import resolve_model_path
from lowvram_r1.runs import checkpoint_step
from lowvram_r1.runs.lifecycle import RunSession
from lowvram_r1.runs.reader import read_jsonl
from lowvram_r1.runs.summary import summarize_run
from lowvram_r1.train.combinations import settle
from lowvram_r1.train.distributed import Processes
from lowvram_r1.train.prepare import Prepared, check_loadable, check_processes, prepare, run_dir_for

logger = logging.getLogger(__name__)


def train(
    cfg: RunConfig,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    *,
    gpu_memory: str | None = None,
    auto_fit: bool = False,
    force: bool = False,
    hardware: Hardware | None = None,
) -> dict[str, Any]:
    """Run GRPO as configured; returns the summary the CLI prints. Raises ``ValueError`` on bad input.

    The memory plan comes before any weights load (``memory.fit.fit_for_training``): a config that cannot fit the
    GPU (or ``gpu_memory``) is refused with the cheapest change that fits, shrunk with ``auto_fit``, or tried
    anyway with ``force``. ``callbacks``: extra transformers ``TrainerCallback``s (the GPU smoke test probes the
    trained model with one). ``hardware``: the caller's detection (the CLI's), else detected here.
    """
    from lowvram_r1.memory.fit import fit_for_training

    started = time.monotonic()
    hardware = hardware or detect_hardware()
    processes = Processes.start(cpu=not hardware.cuda)
    cfg = check_processes(cfg, processes.count, hardware)
    cfg = settle(cfg, processes.count, hardware, announce=processes.main)  # combinations: refused, or switched off
    run = processes.from_main(lambda: run_dir_for(cfg))  # one folder for all (a default name is main's clock)
    with RunSession(run, resume=cfg.run.resume, stage="grpo", main=processes.main) as session:
        first = backend_class(resolve_backend(cfg, hardware.cuda)[0]).imports_first
        prepared = prepare(cfg, session.run, imports_first=first)
        cfg = fit_for_training(cfg, hardware.memory_gb if hardware.cuda else None, gpu_memory, auto_fit, force)
        prepared = replace(prepared, cfg=cfg)
        name, reason = resolve_backend(cfg, hardware.cuda)
        logger.info("backend: %s (%s)", name, reason)
        backend = get_backend(name)
        check_loadable(prepared, backend, hardware)
        loaded = backend.load(cfg, prepared.model_ref or resolve_model_path(cfg), hardware)  # tiny: built here
        resume_from = processes.from_main(
            lambda: session.start(
                config_module.dump(cfg),
                task=prepared.task.name,
                model=cfg.model.name,
                max_steps=cfg.training.max_steps,
                processes=processes.count,
            )
        )
        if not processes.main:
            session.start("")  # writes nothing: catches SIGTERM like the main process
        trainer, recorder, held_out = grpo_trainer(
            prepared, backend, loaded, hardware, session, progress, callbacks, processes
        )
        final_step, train_seconds = run_grpo(trainer, recorder, held_out, prepared, resume_from, processes)
        save_adapter(trainer, loaded.tokenizer, session.run.adapter, processes)
        session.finish(final_step, cfg.training.max_steps)
        processes.wait()  # the adapter and the final status are written before any process reports
    summary = summarize_run(session.run, time.monotonic() - started)
    return {**summary, "train_seconds": train_seconds, "processes": processes.count, "main": processes.main}


def grpo_trainer(
    prepared: Prepared,
    backend: Any,
    loaded: Any,
    hardware: Hardware,
    session: RunSession,
    progress: bool,
    callbacks: Sequence[Any],
    processes: Processes | None = None,
) -> tuple[Any, Any, Any]:
    """TRL's GRPOTrainer on the task's rewards plus the weight-0 monitors, with the RunRecorder; and the held-out
    evaluation function the recorder calls (None without an eval split)."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from lowvram_r1.evaluate import evaluate, generate
    from lowvram_r1.models.cpu_logprob import install as install_cpu_logprob
    from lowvram_r1.rewards.weighted import GuardedReward, reward_list
    from lowvram_r1.rollout.multiturn import with_environment
    from lowvram_r1.train.recorder import RunRecorder

    cfg, task = prepared.cfg, prepared.task
    processes = processes or Processes()
    # search tasks: multi-turn rollouts (through the backend's vLLM rollout when it has one), retrieved tokens masked
    loaded = with_environment(task, task.resolve_options(cfg.task.options), loaded)
    install_cpu_logprob()
    # the run's one reward list: the task's (weights overridden by name), shaping, --reward ones, weight-0 monitors
    rewards = reward_list(task, cfg.task, cfg.generation.max_completion_length)
    args = config_module.to_grpo_config(
        cfg,
        session.run.checkpoints,
        **backend.precision(cfg, hardware),
        use_cpu=not hardware.cuda,
        reward_weights=[r.weight for r in rewards],
    )

    def held_out(model: Any) -> dict[str, Any]:
        g = cfg.generation
        multi_turn = task.environment is not None  # evaluation searches as the rollouts do
        generator = (
            loaded.rollout_func.generator(trainer) if multi_turn else backend.held_out_generator(loaded, trainer)
        )
        if processes.count > 1:  # each process completes its share of the prompts; everyone scores them all
            local = generator or (lambda prompts, n, t: generate(model, loaded.tokenizer, prompts, n, t))
            generator = processes.split(local)
        return evaluate(
            model,
            loaded.tokenizer,
            task,
            prepared.eval_rows,
            g.max_completion_length,
            g.eval_temperature,
            g.eval_samples,
            generator=generator,
            rewards=rewards,
        )

    evaluation = held_out if prepared.eval_rows else None
    recorder = RunRecorder(
        session, evaluation, cfg.training.eval_steps, progress and processes.main, processes=processes
    )
    trainer = GRPOTrainer(
        model=loaded.model,
        reward_funcs=[GuardedReward(r.fn, r.name) for r in rewards],  # a reward that raises costs one sample
        args=args,
        processing_class=loaded.tokenizer,
        train_dataset=Dataset.from_list(prepared.train_rows),
        peft_config=loaded.peft_config,
        callbacks=[recorder, *callbacks],
        rollout_func=loaded.rollout_func,
    )
    recorder.attach(trainer)
    return trainer, recorder, evaluation


def run_grpo(
    trainer: Any,
    recorder: Any,
    held_out: Any,
    prepared: Prepared,
    resume_from: Path | None,
    processes: Processes | None = None,
) -> tuple[int, float]:
    """Held-out eval before (unless a resumed run measured it), training, held-out eval after; returns the final
    step and the training seconds."""
    processes = processes or Processes()
    measured = processes.from_main(
        lambda: {r["step"] for r in read_jsonl(prepared.run.metrics)[0] if r.get("kind") == "eval"}
    )
    if held_out and 0 not in measured:
        recorder.record_eval(0, held_out(trainer.model))
    train_started = time.monotonic()
    final_step = train_or_load(trainer, resume_from, prepared.cfg.training.max_steps)
    train_seconds = time.monotonic() - train_started
    if held_out and final_step not in measured:
        recorder.record_eval(final_step, held_out(trainer.model))
    return final_step, train_seconds


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
