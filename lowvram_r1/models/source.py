"""Where the model comes from — the built-in tiny model (built on first use), a local folder, or a hub id — and what
can be read about it without loading weights (config.json: context length, a 4-bit checkpoint).

    path = resolve_model(cfg)          # a checked local folder, or a cached / reachable hub id
    context_length(path)               # max positions, from config.json

The built-in tiny model's folder (built for the run's task and lengths) comes from the run's plan:
``run_plan.RunPlan.model_path()``.

Everything here reads small JSON files only, so a wrong path, a hub id without network or a context too short
fails in a second, before any weights load. Shared by every backend, evaluation and the export stage.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from lowvram_r1.config import RunConfig


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
