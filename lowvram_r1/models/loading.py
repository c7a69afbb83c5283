"""Finding and loading the model: where it comes from (tiny / local folder / hub), what the hardware allows,
and the ``hf`` backend (transformers + bitsandbytes 4-bit + peft LoRA, on any device).

Everything before :func:`load_hf` only reads small JSON files, so a wrong path, a hub id without network or a
GPU-only option on a CPU machine fails in a second, before any weights load.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from lowvram_r1.config import RunConfig
from lowvram_r1.models.hardware import Hardware, detect_hardware  # noqa: F401  (re-exported: callers import here)

logger = logging.getLogger(__name__)


def check_hardware_options(cfg: RunConfig, hardware: Hardware) -> None:
    """Refuse options this machine cannot run (a GPU-only option without CUDA, bf16 on a card without native
    bf16), saying what to use instead."""
    if hardware.cuda:
        if cfg.model.dtype == "bfloat16" and not hardware.bf16:
            raise ValueError(
                f"{hardware.name} (compute capability {'.'.join(map(str, hardware.compute_capability or ()))}) has "
                "no native bf16 (vLLM and Unsloth refuse it below 8.0): use --dtype auto (float16) or --dtype float16"
            )
        return
    gpu_only = {
        "backend unsloth": cfg.model.backend == "unsloth",
        "unsloth-standby": cfg.model.unsloth_standby,
        f"optim {cfg.training.optim}": cfg.training.optim.endswith("8bit"),
        "dtype float16": cfg.model.dtype == "float16",
    }
    wrong = [name for name, used in gpu_only.items() if used]
    if wrong:
        raise ValueError(
            f"no CUDA GPU found, but {', '.join(wrong)} needs one: use --backend hf (or auto), "
            "--optim adamw_torch and --dtype auto on CPU, without --unsloth-standby"
        )


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def model_config_file(name: str) -> Path | None:
    """The config.json of a local model folder or of a hub model already in the local cache."""
    local = Path(name).expanduser()
    if local.is_dir():
        return local / "config.json"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    return Path(cached) if isinstance(cached, str) else None


def resolve_model(cfg: RunConfig) -> str:
    """Check the model reference without loading weights: a local folder, a cached or reachable hub id.

    ``tiny`` is resolved by the engine (it may need building); this handles the rest.
    """
    name = cfg.model.name
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ValueError(f"model folder {name} has no config.json: point --model at a transformers model folder")
        return str(local)
    if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or name.endswith(("/", ".json", ".bin")):
        raise ValueError(f"model path {name} does not exist: check the path, or use --model tiny")
    if model_config_file(name) is None and not hub_reachable():
        raise ValueError(
            f"model {name} is not in the local cache and there is no network to download it: "
            "pass a local folder with --model PATH, or use --model tiny (offline)"
        )
    return name


def context_length(path_or_id: str) -> int | None:
    """The model's maximum positions, read from its config.json when we have it locally."""
    file = model_config_file(path_or_id)
    if file is None or not file.is_file():
        return None
    config = json.loads(file.read_text())
    config = config.get("text_config", config)
    return config.get("max_position_embeddings") or config.get("max_sequence_length")


def torch_dtype(cfg: RunConfig, hardware: Hardware) -> Any:
    import torch

    if cfg.model.dtype != "auto":
        return getattr(torch, cfg.model.dtype)
    return torch.bfloat16 if hardware.cuda and hardware.bf16 else torch.float16 if hardware.cuda else torch.float32


def bnb_checkpoint(model_path: str) -> bool:
    """A checkpoint stored in bitsandbytes 4-bit: Unsloth's ``...-bnb-4bit`` uploads, or a local folder whose
    config.json says so."""
    if model_path.rstrip("/").lower().endswith("-bnb-4bit"):
        return True
    config = Path(model_path) / "config.json"
    try:
        quantization = json.loads(config.read_text()).get("quantization_config") or {}
    except (OSError, ValueError):
        return False
    return quantization.get("quant_method") == "bitsandbytes"


def loads_4bit(cfg: RunConfig, model_path: str) -> bool:
    """QLoRA: asked for with ``--load-in-4bit``, or the checkpoint is stored in 4-bit already."""
    return cfg.model.load_in_4bit or bnb_checkpoint(model_path)


def mixed_precision(cfg: RunConfig, hardware: Hardware) -> dict[str, bool]:
    """``TrainingArguments``' ``bf16`` / ``fp16`` autocast flags, following the model's dtype.

    A float16 model gets float16 autocast even on a bfloat16 card: Unsloth's trainer refuses a float16 model with
    ``bf16=True`` ("Model is in float16 precision but you want to use bfloat16"), and mixing them is never meant.
    """
    if not hardware.cuda:
        return {"bf16": False, "fp16": False}
    dtype = str(torch_dtype(cfg, hardware)).removeprefix("torch.")
    return {"bf16": dtype == "bfloat16" or (dtype == "float32" and hardware.bf16), "fp16": dtype == "float16"}


def load_hf(cfg: RunConfig, path: str, hardware: Hardware) -> tuple[Any, Any]:
    """transformers model (4-bit NF4 through bitsandbytes when asked) and its tokenizer, ready for peft LoRA."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    dtype = torch_dtype(cfg, hardware)
    stored_4bit = bnb_checkpoint(path)
    extra: dict[str, Any] = {}
    if cfg.model.load_in_4bit and not stored_4bit:  # a 4-bit checkpoint carries its own quantization config
        extra["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype,
        trust_remote_code=cfg.model.trust_remote_code,
        device_map={"": 0} if hardware.cuda else None,
        **extra,  # quantization_config=None would override a 4-bit checkpoint's own and fail to load it
    )
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if loads_4bit(cfg, path):
        from peft import prepare_model_for_kbit_training

        if not hardware.cuda:
            keep_cpu_4bit_trainable(model)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.model.gradient_checkpointing)
    return model, tokenizer


def keep_cpu_4bit_trainable(model: Any) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference during held-out eval.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 converts a ``Linear4bit``'s weight to an inference-only layout the
    first time it runs in eval mode without gradients, and never converts it back: the next training step fails
    with "a view of a leaf Variable that requires grad is being used in an in-place operation". Training models
    are evaluated between steps, so they keep the trainable layout (the flag is the module's own switch).
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def lora_config(cfg: RunConfig) -> Any:
    from peft import LoraConfig

    targets = cfg.lora.target_modules
    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        task_type="CAUSAL_LM",
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()],
    )
