"""The planner against measurement, for a random-weight model of the real Qwen2.5-0.5B shape (hidden 896, 14/2
heads, intermediate 4864, vocabulary 151936):

- per layer: the bytes autograd saves per token (counted with saved-tensor hooks) vs ``vram._layer_bytes``, for
  fp32, bf16 and bf16 under autocast (what a GPU run does), within 5%;
- whole step: predicted CPU peak vs the measured peak RSS increase of one GRPO training step (tests/vram_step.py,
  a fresh process each) for LoRA, LoRA + checkpointing and QLoRA + checkpointing, shrunk to 4 layers to keep it
  near a minute per run, within 20%.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowvram_r1 import config, vram
from tests.vram_step import run_step

QWEN05_4_LAYERS = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
    "num_attention_heads": 14, "num_key_value_heads": 2, "num_hidden_layers": 4, "vocab_size": 151936,
    "tie_word_embeddings": True, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "hidden_act": "silu",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("qwen05-shape")
    (folder / "config.json").write_text(json.dumps(QWEN05_4_LAYERS))
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(("dtype", "autocast", "lora_copy"), [("float32", False, 0), ("bfloat16", False, 4),
                                                            ("bfloat16", True, 2)])
def test_saved_bytes_per_layer_match_autograd(dtype: str, autocast: bool, lora_copy: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    shape = {**QWEN05_4_LAYERS, "vocab_size": 1024, "num_hidden_layers": 2}
    model = AutoModelForCausalLM.from_config(Qwen2Config(**shape)).to(getattr(torch, dtype))
    model = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear"))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    batch, seq = 2, 128
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        model(input_ids=torch.randint(0, 1024, (batch, seq)))
    per_layer = sum(saved.values()) / (batch * seq * shape["num_hidden_layers"])  # embeddings/head: small here
    arch = vram.architecture("qwen2.5-0.5b")
    act = 4 if dtype == "float32" else 2
    predicted = vram._layer_bytes(arch, act, lora_copy, set(arch.linear_shapes()), full=False)
    assert predicted == pytest.approx(per_layer, rel=0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("batch", "prompt", "completion", "ckpt", "mode"),
    [(4, 64, 128, False, "lora"), (8, 64, 192, True, "lora"), (2, 128, 256, True, "qlora")],
)
def test_cpu_peak_within_20_percent(model_dir: Path, batch: int, prompt: int, completion: int, ckpt: bool,
                                    mode: str) -> None:
    cfg = config.from_dict({
        "model": {"name": str(model_dir), "gradient_checkpointing": ckpt, "load_in_4bit": mode == "qlora"},
        "training": {"per_device_train_batch_size": batch, "num_generations": batch},
        "generation": {"max_prompt_length": prompt, "max_completion_length": completion},
    })
    predicted = vram.plan(cfg, device="cpu")
    predicted_bytes = predicted.phase_bytes("always") + predicted.phase_bytes("train")
    measured = run_step(str(model_dir), batch, prompt, completion, ckpt, mode)
    print(f"{mode} batch {batch} seq {prompt}+{completion} ckpt {ckpt}: predicted {predicted_bytes / 2**30:.3f} GB, "
          f"measured {measured / 2**30:.3f} GB")
    assert abs(predicted_bytes / measured - 1) <= 0.20
