"""The planner against measurement, for a random-weight model of the real Qwen2.5-0.5B shape (hidden 896, 14/2
heads, intermediate 4864, vocabulary 151936):

- per layer: the bytes autograd saves per token (counted with saved-tensor hooks) vs ``vram._layer_bytes``, for
  fp32, bf16 and bf16 under autocast (what a GPU run does), within 5%; and the same for two layers of the real
  Llama-3.1-8B width (the model of Unsloth's published comparison);
- whole step: predicted CPU peak vs the measured peak RSS increase of one GRPO training step (tests/vram_step.py,
  a fresh process each) for LoRA, LoRA + checkpointing and QLoRA + checkpointing, shrunk to 4 layers to keep it
  near a minute per run, within 20%.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.memory import planner as vram
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


def _saved_bytes_per_token_and_layer(model_type: str, shape: dict, dtype: str, autocast: bool,
                                     targets: str | list[str]) -> float:
    """Bytes autograd saves per token inside the decoder layers of a 2-layer random model of ``shape``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    layers = 2
    fields = {k: v for k, v in shape.items() if k not in ("model_type", "architectures")}
    model_config = AutoConfig.for_model(model_type, **{**fields, "vocab_size": 1024, "num_hidden_layers": layers})
    torch.set_default_dtype(getattr(torch, dtype))  # build in the target dtype: an 8B-wide layer is 0.4 GB in bf16
    try:
        model = AutoModelForCausalLM.from_config(model_config)
    finally:
        torch.set_default_dtype(torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, target_modules=targets))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}
    inside = [False]  # count only what the decoder layers save, not the embedding, final norm or head

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if inside[0] and storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    for layer in model.base_model.model.model.layers:
        layer.register_forward_pre_hook(lambda *_: inside.__setitem__(0, True))
        layer.register_forward_hook(lambda *_: inside.__setitem__(0, False))
    batch, seq = 2, 128
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        model(input_ids=torch.randint(0, 1024, (batch, seq)))
    return sum(saved.values()) / (batch * seq * layers)


@pytest.mark.parametrize(("dtype", "autocast", "lora_copy"), [("float32", False, 0), ("bfloat16", False, 4),
                                                            ("bfloat16", True, 2)])
def test_saved_bytes_per_layer_match_autograd(dtype: str, autocast: bool, lora_copy: int) -> None:
    per_layer = _saved_bytes_per_token_and_layer("qwen2", QWEN05_4_LAYERS, dtype, autocast, "all-linear")
    arch = vram.architecture("qwen2.5-0.5b")
    act = 4 if dtype == "float32" else 2
    predicted = vram._layer_bytes(arch, act, lora_copy, set(arch.linear_shapes()), full=False)
    assert predicted == pytest.approx(per_layer, rel=0.05)


@pytest.mark.parametrize("targets", ["all-linear", "q_proj,v_proj"])
def test_llama_8b_layer_saves_what_the_planner_says(targets: str) -> None:
    # The Llama-3.1-8B shape of Unsloth's TRL + FlashAttention-2 comparison, as a GPU run holds it: bf16 weights,
    # fp32 LoRA under bf16 autocast. All seven projections adapted, and peft's default (q_proj, v_proj) as the
    # leanest LoRA there is. Both save well over the ~85 kB per token and layer that the blog's 414 GB implies
    # without checkpointing (tests/test_vram.py, test_published_trl_figure_*).
    arch = vram.architecture("meta-llama/Llama-3.1-8B-Instruct")
    shape = {"hidden_size": arch.hidden, "intermediate_size": arch.intermediate, "num_attention_heads": arch.heads,
             "num_key_value_heads": arch.kv_heads, "head_dim": arch.head_dim}
    names = targets if targets == "all-linear" else targets.split(",")
    per_layer = _saved_bytes_per_token_and_layer("llama", shape, "bfloat16", True, names)
    predicted = vram._layer_bytes(arch, 2, 2, set(arch.linear_shapes()) if targets == "all-linear" else set(names),
                                  full=False)
    assert predicted == pytest.approx(per_layer, rel=0.05)
    assert per_layer > 1.5 * 85_000


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
