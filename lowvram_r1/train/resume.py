"""What a ``--resume`` may change: everything but what its checkpoint holds. Checked before any weights load.

    check_resume(cfg, run)      # ValueError naming each field the checkpoint cannot honour, and what to do

A checkpoint holds LoRA weights of one shape for one base model: a different ``model.name``, ``lora.r`` or
``lora.target_modules`` cannot load into it (the adapter's shapes or modules differ), and a different ``lora.alpha``
would silently rescale every update it learned. Such a resume used to fail only after the model loaded — and after
config.yaml had been rewritten with the new values, so that every later resume failed too. The run's own
config.yaml (and the checkpoint's ``adapter_config.json``) say what was trained; everything else (steps, learning
rate, batch, generation lengths) may change on resume.
"""

from __future__ import annotations

import json
from typing import Any

from lowvram_r1 import config as config_module
from lowvram_r1.config import RunConfig
from lowvram_r1.runs import RunDir, read_regular

# (section, field, flag, key in peft's adapter_config.json or None)
FIXED_BY_CHECKPOINT: tuple[tuple[str, str, str, str | None], ...] = (
    ("model", "name", "--model", None),
    ("lora", "r", "--lora-r", "r"),
    ("lora", "alpha", "--lora-alpha", "lora_alpha"),
    ("lora", "target_modules", "--lora-target-modules", None),
)


def trained_values(run: RunDir) -> dict[tuple[str, str], Any]:
    """What the run was trained with: its config.yaml, then the newest checkpoint's adapter_config.json."""
    values: dict[tuple[str, str], Any] = {}
    try:
        saved = config_module.parse_yaml(read_regular(run.config, config_module.MAX_YAML_BYTES), str(run.config))
    except (OSError, ValueError):
        saved = None
    if isinstance(saved, dict):
        for section, name, _, _ in FIXED_BY_CHECKPOINT:
            part = saved.get(section)
            if isinstance(part, dict) and name in part:
                values[(section, name)] = part[name]
    checkpoint = run.last_checkpoint()
    if checkpoint is not None:
        try:
            adapter = json.loads(read_regular(checkpoint / "adapter_config.json", 1 << 20))
        except (OSError, ValueError):
            adapter = None
        if isinstance(adapter, dict):
            for section, name, _, key in FIXED_BY_CHECKPOINT:
                if key and isinstance(adapter.get(key), int) and (section, name) not in values:
                    values[(section, name)] = adapter[key]
    return values


def check_resume(cfg: RunConfig, run: RunDir) -> None:
    """Refuse a resume whose config changes what the checkpoint holds (before anything loads or is written)."""
    changed = []
    for (section, name), trained in trained_values(run).items():
        asked = getattr(getattr(cfg, section), name)
        if asked != trained:
            flag = next(f for s, n, f, _ in FIXED_BY_CHECKPOINT if (s, n) == (section, name))
            changed.append(f"{section}.{name} is {trained!r} in the checkpoint, {asked!r} asked ({flag})")
    if changed:
        raise ValueError(
            f"--resume {run.path}: its checkpoint cannot take these changes: {'; '.join(changed)}. Drop those flags "
            "to continue the run as it was trained, or start a new run (another --output-dir) with them; nothing "
            "was loaded or written"
        )
