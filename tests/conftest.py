"""Shared fixtures: an isolated cache, and a small tiny model built once per session (offline, ~15 s)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEMO_OPTIONS = {"min_numbers": 3, "max_numbers": 3, "max_number": 9, "max_target": 100, "question_style": "compact"}


@pytest.fixture(scope="session", autouse=True)
def offline_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tests never touch the user's cache (CI may point LOWVRAM_R1_CACHE at a reusable one) nor the network."""
    cache = Path(os.environ.get("LOWVRAM_R1_CACHE") or tmp_path_factory.mktemp("cache"))
    os.environ["LOWVRAM_R1_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    return cache


@pytest.fixture(scope="session")
def small_model(offline_cache: Path) -> Path:
    """A 2-layer tiny countdown model with a short cold-start SFT: enough for the code paths, not for accuracy."""
    from lowvram_r1.models.tiny import ensure_tiny_model, spec_for

    spec = spec_for(
        "countdown",
        0,
        DEMO_OPTIONS,
        "chat",
        "",
        hidden_size=128,
        heads=2,
        kv_heads=1,
        layers=2,
        intermediate_size=256,
        vocab_size=400,
        sft_examples=2000,
        context=1024,
        sft_epochs=1.0,
    )
    return ensure_tiny_model(spec)


@pytest.fixture(scope="session")
def stored_4bit_model(small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small_model`` saved in bitsandbytes NF4, as Unsloth's ``-bnb-4bit`` uploads are stored."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    folder = tmp_path_factory.mktemp("small-bnb-4bit")
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(small_model, quantization_config=quantization, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(small_model).save_pretrained(folder)
    return folder
