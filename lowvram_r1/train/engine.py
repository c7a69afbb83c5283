"""``train(plan)``: one GRPO run, top to bottom. The CLI, the panel and the notebook all end up here.

    from lowvram_r1 import config
    from lowvram_r1.train import engine
    summary = engine.train(config.load("cpu-demo"))     # a config (resolved here), or the CLI's run_plan.RunPlan

It reads as the recipe: the stage runner (:mod:`lowvram_r1.train.stage`, shared with SFT and every pipeline stage)
claims the run folder → prepares (rows, reward list, model reference) → plans memory → picks the backend and lets
it refuse what it cannot run → backend.load; then GRPO's own part, here: TRL's GRPOTrainer with the RunRecorder →
held-out eval, train, held-out eval; the runner saves the adapter. Everything that can be checked is checked before
any weights load; what differs between backends lives in :mod:`lowvram_r1.backends`, what every stage shares about
the run folder (one trainer, status, stop, resume) in :mod:`lowvram_r1.runs.lifecycle`.

Under ``accelerate launch`` / torchrun (``lowvram-r1 train --num-processes N`` starts one) every process runs this
same function: the main process decides the run folder and writes it, the others train beside it and generate
their share of the held-out completions (:mod:`lowvram_r1.train.distributed`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lowvram_r1 import config as config_module
from lowvram_r1.config import RunConfig
from lowvram_r1.models.hardware import Hardware
from lowvram_r1.run_plan import RunPlan, plan_of
from lowvram_r1.runs.lifecycle import RunSession
from lowvram_r1.runs.reader import read_jsonl
from lowvram_r1.runs.summary import summarize_run
from lowvram_r1.train.distributed import Processes
from lowvram_r1.train.prepare import Prepared
from lowvram_r1.train.stage import Stage, StageRun, Trained, run_stage, train_or_load

logger = logging.getLogger(__name__)


def train(
    cfg: RunConfig | RunPlan,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    *,
    gpu_memory: str | None = None,
    auto_fit: bool = False,
    force: bool = False,
    hardware: Hardware | None = None,
) -> dict[str, Any]:
    """Run GRPO as configured (a config, or the run already resolved by the caller: ``run_plan.resolve``); returns
    the summary the CLI prints. Raises ``ValueError`` on bad input.

    The memory plan comes before any weights load (``memory.fit.fit_for_training``): a config that cannot fit the
    GPU (or ``gpu_memory``) is refused with the cheapest change that fits, shrunk with ``auto_fit``, or tried
    anyway with ``force``. ``callbacks``: extra transformers ``TrainerCallback``s (the GPU smoke test probes the
    trained model with one). ``hardware``: the caller's detection (the CLI's), else detected here.
    """
    started = time.monotonic()

    def grpo(run: StageRun) -> Trained:  # the stage's own part: the trainer, held-out eval, train, held-out eval
        trainer, recorder, held_out = grpo_trainer(
            run.prepared, run.backend, run.loaded, run.hardware, run.session, progress, callbacks, run.processes
        )
        final_step, seconds = run_grpo(trainer, recorder, held_out, run.prepared, run.resume_from, run.processes)
        return Trained(trainer, final_step, {"train_seconds": seconds})

    # the lifecycle, the pre-flight (every check before weights), the memory plan and backend.load: train.stage
    result = run_stage(
        plan_of(cfg, hardware),
        Stage("grpo", grpo),
        hardware=hardware,
        gpu_memory=gpu_memory,
        auto_fit=auto_fit,
        force=force,
    )
    summary = summarize_run(result.run, time.monotonic() - started)
    processes = result.processes
    return {**summary, **result.trained.summary, "processes": processes.count, "main": processes.main}


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

    from lowvram_r1.models.cpu_logprob import install as install_cpu_logprob
    from lowvram_r1.rewards.weighted import GuardedReward, reward_list
    from lowvram_r1.rollout.multiturn import with_environment
    from lowvram_r1.train.evaluate import evaluate, generate
    from lowvram_r1.train.recorder import RunRecorder

    cfg, task = prepared.cfg, prepared.task
    processes = processes or Processes()
    # search tasks: multi-turn rollouts (through the backend's vLLM rollout when it has one), retrieved tokens masked
    loaded = with_environment(task, prepared.plan.options, loaded)
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
