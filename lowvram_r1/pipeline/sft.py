"""Cold-start SFT (R1's first stage): TRL's SFTTrainer with LoRA/QLoRA on chat-formatted reasoning traces,
to teach the output format before RL. Writes a run directory like GRPO training does.

    lowvram-r1 sft --task countdown --data traces.jsonl --model tiny --max-steps 200

Data (jsonl/parquet, or a hub id): rows in TRL's conversational layouts — ``{"messages": [...]}`` or
``{"prompt": [...], "completion": [...]}`` (what ``lowvram-r1 sample`` writes) — or task rows with a
``completion`` text, whose prompt is then built with the task's own prompt format.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from lowvram_r1 import config as config_module
from lowvram_r1.config import RunConfig
from lowvram_r1.runs import RunDir
from lowvram_r1.tasks import get_task
from lowvram_r1.tasks.base import PromptFormat, TaskDataError, read_hub_rows, read_local_rows

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
    """LoRA SFT of ``cfg.model`` on ``data``; the adapter and metrics land in the run directory."""
    from lowvram_r1.engine import resolve_model_path
    from lowvram_r1.models.cpu_logprob import install
    from lowvram_r1.models.loading import (
        check_hardware_options,
        detect_hardware,
        load_hf,
        lora_config,
        mixed_precision,
    )

    started = time.monotonic()
    rows = sft_rows(cfg, data)
    run = RunDir(Path(cfg.run.output_dir or f"runs/sft-{cfg.task.name}-{time.strftime('%Y%m%d-%H%M%S')}"))
    if run.config.exists() and not cfg.run.resume:
        raise ValueError(f"{run.path} already holds a run: pass another --output-dir")
    hardware = detect_hardware()
    check_hardware_options(cfg, hardware)
    model_path = resolve_model_path(cfg)
    install()
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from lowvram_r1.recorder import RunRecorder

    args = SFTConfig(
        **config_module.trainer_args(
            cfg, run.checkpoints, **mixed_precision(cfg, hardware), use_cpu=not hardware.cuda
        ),
        max_length=cfg.generation.max_prompt_length + cfg.generation.max_completion_length,
    )
    model, tokenizer = load_hf(cfg, model_path, hardware)
    run.path.mkdir(parents=True, exist_ok=True)
    config_module.save(cfg, run.config)
    run.write_status(
        state="running",
        stage="sft",
        pid=os.getpid(),
        started=time.time(),
        task=cfg.task.name,
        model=cfg.model.name,
        max_steps=cfg.training.max_steps,
        data=data,
    )
    recorder = RunRecorder(run, progress=progress, stage="SFT")
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
        callbacks=[recorder],
    )
    trainer.remove_callback(PrinterCallback)
    recorder.attach(trainer)
    try:
        trainer.train()
        trainer.model.save_pretrained(run.adapter)
        tokenizer.save_pretrained(run.adapter)
        run.write_status(state="finished", step=trainer.state.global_step, finished=time.time())
    except BaseException as error:
        run.write_status(state="failed", error=f"{type(error).__name__}: {error}")
        raise
    return {
        "run_dir": str(run.path),
        "steps": trainer.state.global_step,
        "rows": len(rows),
        "final_loss": trainer.state.log_history[-1].get("train_loss"),
        "wall_seconds": time.monotonic() - started,
    }
