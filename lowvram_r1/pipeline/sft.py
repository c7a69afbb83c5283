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
from lowvram_r1.models.hardware import check_hardware_options, detect_hardware
from lowvram_r1.models.source import resolve_model_path
from lowvram_r1.runs.lifecycle import RunSession
from lowvram_r1.tasks import get_task
from lowvram_r1.tasks.base import PromptFormat, TaskDataError, read_hub_rows, read_local_rows
from lowvram_r1.train.prepare import run_dir_for

logger = logging.getLogger(__name__)


def sft_rows(cfg: RunConfig, data: str) -> list[dict[str, Any]]:
    """Rows in a layout SFTTrainer reads, from a local file or a hub id."""
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
    task = get_task(cfg.task.name)
    fmt = PromptFormat(cfg.task.prompt_style, cfg.task.system_prompt, cfg.task.assistant_prefill)
    rows = []
    for row in raw:
        prompt = task.prompt(row, fmt, cfg.task.options)
        completion = str(row["completion"])
        rows.append(
            {
                "prompt": prompt,
                "completion": completion if isinstance(prompt, str) else [{"role": "assistant", "content": completion}],
            }
        )
    return rows


def train_sft(cfg: RunConfig, data: str, progress: bool = True) -> dict[str, Any]:
    """LoRA SFT of ``cfg.model`` on ``data`` in the same run lifecycle as GRPO (one trainer per folder, stop,
    ``--resume`` from the last checkpoint); the adapter and metrics land in the run directory."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from lowvram_r1.backends.registry import get_backend
    from lowvram_r1.models.cpu_logprob import install
    from lowvram_r1.train.distributed import Processes
    from lowvram_r1.train.engine import save_adapter, train_or_load
    from lowvram_r1.train.recorder import RunRecorder

    started = time.monotonic()
    from lowvram_r1.tasks.user import task_label

    label = task_label(cfg.task.name, get_task(cfg.task.name))
    default = Path(f"runs/sft-{label}-{time.strftime('%Y%m%d-%H%M%S')}")
    with RunSession(run_dir_for(cfg, default), resume=cfg.run.resume, stage="sft") as session:
        rows = sft_rows(cfg, data)
        hardware = detect_hardware()
        check_hardware_options(cfg, hardware)
        backend = get_backend("hf")  # TRL's SFTTrainer on the plain peft model
        install()
        args = SFTConfig(
            **config_module.trainer_args(
                cfg, session.run.checkpoints, **backend.precision(cfg, hardware), use_cpu=not hardware.cuda
            ),
            max_length=cfg.generation.max_prompt_length + cfg.generation.max_completion_length,
        )
        loaded = backend.load(cfg, resolve_model_path(cfg), hardware, rollouts=False)
        resume_from = session.start(
            config_module.dump(cfg),
            task=cfg.task.name,
            model=cfg.model.name,
            max_steps=cfg.training.max_steps,
            data=data,
        )
        recorder = RunRecorder(session, progress=progress, stage="SFT")
        trainer = SFTTrainer(
            model=loaded.model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=loaded.tokenizer,
            peft_config=loaded.peft_config,
            callbacks=[recorder],
        )
        recorder.attach(trainer)
        final_step = train_or_load(trainer, resume_from, cfg.training.max_steps)
        save_adapter(trainer, loaded.tokenizer, session.run.adapter, Processes())
        session.finish(final_step, cfg.training.max_steps)
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    return {
        "run_dir": str(session.run.path),
        "steps": final_step,
        "rows": len(rows),
        "final_loss": trainer.state.log_history[-1].get("train_loss") if trainer.state.log_history else None,
        "last_loss": losses[-1] if losses else None,
        "wall_seconds": time.monotonic() - started,
    }
