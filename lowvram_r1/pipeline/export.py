"""Export a run: merge its LoRA adapter into the base model (16-bit, or re-quantised to 4-bit NF4), or GGUF.

    lowvram-r1 export runs/NAME --merged 16bit                 # -> runs/NAME/merged-16bit (plain transformers)
    lowvram-r1 export runs/NAME --merged 4bit                  # -> runs/NAME/merged-4bit  (bitsandbytes NF4)
    lowvram-r1 export runs/NAME --gguf q4_k_m                  # needs unsloth on a CUDA GPU

The merged folder loads with ``AutoModelForCausalLM.from_pretrained`` alone and gives the same outputs as base +
adapter. GGUF conversion is Unsloth's (``save_pretrained_gguf``, which drives llama.cpp); on a machine without a
CUDA GPU and unsloth this says so and stops, rather than half-doing it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from lowvram_r1 import config as config_module
from lowvram_r1.runs import RunDir

logger = logging.getLogger(__name__)
MERGED_KINDS = ("16bit", "4bit")


def base_model_path(run: RunDir) -> tuple[config_module.RunConfig, str]:
    """The run's config and the folder (or hub id) of the base model its adapter was trained on."""
    if not run.config.is_file():
        raise ValueError(f"{run.path} is not a run directory (no config.yaml): pass runs/NAME")
    if not (run.adapter / "adapter_config.json").is_file():
        raise ValueError(f"{run.path} has no adapter yet: let the run finish (or stop it) first")
    from lowvram_r1.run_plan import resolve

    plan = resolve(config_module.load(run.config))
    return plan.cfg, plan.model_path()


def load_merged(run: RunDir) -> tuple[Any, Any]:
    """Base model in 16/32-bit with the run's adapter merged into its weights, and the tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg, base = base_model_path(run)
    model = AutoModelForCausalLM.from_pretrained(base, trust_remote_code=cfg.model.trust_remote_code)
    model = PeftModel.from_pretrained(model, str(run.adapter)).merge_and_unload()
    return model, AutoTokenizer.from_pretrained(str(run.adapter))


def export_merged(run_dir: str | Path, kind: str = "16bit", output: str | Path | None = None) -> Path:
    """Write the merged model to ``output`` (default ``<run>/merged-<kind>``); returns the folder."""
    if kind not in MERGED_KINDS:
        raise ValueError(f"--merged must be one of {', '.join(MERGED_KINDS)}, got {kind!r}")
    run = RunDir(Path(run_dir))
    target = Path(output) if output else run.path / f"merged-{kind}"
    model, tokenizer = load_merged(run)
    if kind == "4bit":
        model = _quantize_nf4(model, target)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    logger.info("merged model (%s) written to %s", kind, target)
    return target


def _quantize_nf4(model: Any, scratch: Path) -> Any:
    """Re-load the merged weights as NF4 through bitsandbytes (serialisable since bitsandbytes 0.41)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    staging = scratch.parent / f".{scratch.name}-16bit"
    model.save_pretrained(staging)
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)
    quantized = AutoModelForCausalLM.from_pretrained(staging, quantization_config=quantization)
    shutil.rmtree(staging, ignore_errors=True)
    return quantized


def export_gguf(run_dir: str | Path, quantization: str = "q4_k_m") -> Path:
    """GGUF through Unsloth on a CUDA GPU; a clear error elsewhere."""
    import importlib.util

    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("unsloth") is None:
        raise ValueError(
            "GGUF export needs unsloth on a CUDA GPU (pip install -e '.[gpu]'); here, export "
            "--merged 16bit and convert with llama.cpp's convert_hf_to_gguf.py"
        )
    from lowvram_r1.backends.unsloth import import_unsloth

    fast_language_model = import_unsloth(standby=False, strict=False)  # no training here: a late import only warns
    run = RunDir(Path(run_dir))
    cfg, _ = base_model_path(run)
    model, tokenizer = fast_language_model.from_pretrained(
        model_name=str(run.adapter), load_in_4bit=cfg.model.load_in_4bit
    )
    target = run.path / f"gguf-{quantization}"
    model.save_pretrained_gguf(str(target), tokenizer, quantization_method=quantization)
    return target


def push_to_hub(folder: Path, repo: str) -> None:
    """Upload an exported folder; without network, a clear error."""
    from huggingface_hub import HfApi

    try:
        HfApi().upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model")
    except Exception as error:  # connection, auth, permissions: all end the same way for the user
        raise ValueError(
            f"could not push {folder} to {repo} ({type(error).__name__}: {str(error)[:200]}); "
            "check the network and `huggingface-cli login`"
        ) from error
