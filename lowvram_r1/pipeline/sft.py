"""Cold-start SFT (R1's first stage): TRL's SFTTrainer with LoRA/QLoRA on chat-formatted reasoning traces,
to teach the output format before RL. Writes a run directory like GRPO training does.

    lowvram-r1 sft --task countdown --data traces.jsonl --model tiny --max-steps 200

Data (jsonl/parquet, or a hub id): rows in TRL's conversational layouts — ``{"messages": [...]}`` or
``{"prompt": [...], "completion": [...]}`` (what ``lowvram-r1 sample`` writes) — or task rows with a
``completion`` text, whose prompt is then built with the task's own prompt format.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from lowvram_r1 import config as config_module
from lowvram_r1.config import RunConfig
from lowvram_r1.models.hardware import Hardware
from lowvram_r1.run_plan import RunPlan, plan_of
from lowvram_r1.tasks.base import TaskDataError, read_hub_rows, read_local_rows

logger = logging.getLogger(__name__)


def sft_rows(plan: RunPlan, data: str) -> list[dict[str, Any]]:
    """Rows in a layout SFTTrainer reads, from a local file or a hub id (task rows: prompts in the plan's format)."""
    raw = read_local_rows(data) if Path(data).suffix else read_hub_rows(data, None, "train")
    if not raw:
        raise TaskDataError(f"{data} has no rows")
    first = raw[0]
    if "messages" in first or ("prompt" in first and "completion" in first and not isinstance(first["prompt"], str)):
        return raw
    if "completion" not in first:
        raise TaskDataError(
            f"{data}: rows need 'messages', or 'prompt' + 'completion', or the task's columns + "
            f"'completion' (found: {', '.join(sorted(first))})"
        )
    rows = []
    for row in raw:
        prompt = plan.task.prompt(row, plan.prompt_format, plan.cfg.task.options)
        completion = str(row["completion"])
        rows.append(
            {
                "prompt": prompt,
                "completion": completion if isinstance(prompt, str) else [{"role": "assistant", "content": completion}],
            }
        )
    return rows


def train_sft(
    cfg: RunConfig | RunPlan,
    data: str,
    progress: bool = True,
    *,
    gpu_memory: str | None = None,
    force: bool = False,
    hardware: Hardware | None = None,
) -> dict[str, Any]:
    """LoRA SFT of the run's model (a config, or its plan) on ``data`` through the stage runner GRPO uses
    (:mod:`lowvram_r1.train.stage`): the same pre-flight before any weights load (run folder, rows, reward list,
    model reference and context, memory plan of one training step, hardware options, prompt lengths) and the same
    lifecycle (one trainer per folder, stop, ``--resume`` from the last checkpoint); the adapter and metrics land in
    the run directory.
    ``gpu_memory`` / ``force``: as ``train``'s; ``hardware``: the caller's detection, else detected here."""
    from lowvram_r1.train.stage import Stage, StageRun, Trained, run_stage, train_or_load

    started = time.monotonic()

    def sft(run: StageRun) -> Trained:  # the stage's own part: TRL's SFTTrainer with the RunRecorder, then train
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        from lowvram_r1.models.cpu_logprob import install
        from lowvram_r1.train.recorder import RunRecorder

        cfg, hardware = run.prepared.cfg, run.hardware
        install()
        args = SFTConfig(
            **config_module.trainer_args(
                cfg, run.session.run.checkpoints, **run.backend.precision(cfg, hardware), use_cpu=not hardware.cuda
            ),
            max_length=cfg.generation.max_prompt_length + cfg.generation.max_completion_length,
        )
        recorder = RunRecorder(run.session, progress=progress, stage="SFT")
        trainer = SFTTrainer(
            model=run.loaded.model,
            args=args,
            train_dataset=Dataset.from_list(run.prepared.train_rows),
            processing_class=run.loaded.tokenizer,
            peft_config=run.loaded.peft_config,
            callbacks=[recorder],
        )
        recorder.attach(trainer)
        final_step = train_or_load(trainer, run.resume_from, cfg.training.max_steps)
        return Trained(trainer, final_step, {"rows": len(run.prepared.train_rows)})

    plan = plan_of(cfg, hardware)  # resolved once for the stage
    stage = Stage(
        "sft",
        sft,
        rows=lambda plan: sft_rows(plan, data),
        default_dir=Path(f"runs/sft-{plan.label}-{time.strftime('%Y%m%d-%H%M%S')}"),
        generates=False,  # what that means for each check: lowvram_r1.train.stage
        status=lambda prepared, processes: {"task": prepared.cfg.task.name, "data": data},
    )
    result = run_stage(plan, stage, hardware=hardware, gpu_memory=gpu_memory, force=force)
    trainer, final_step = result.trained.trainer, result.trained.final_step
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    return {
        "run_dir": str(result.run.path),
        "steps": final_step,
        "rows": result.trained.summary["rows"],
        "final_loss": trainer.state.log_history[-1].get("train_loss") if trainer.state.log_history else None,
        "last_loss": losses[-1] if losses else None,
        "wall_seconds": time.monotonic() - started,
    }
