"""Offloaded gradient checkpointing (``model.gradient_checkpointing: offload``, backends/offload.py) on CPU.

A CPU has no separate device memory, so "the tensors live in CPU memory" is shown by what the offload hook holds:
torch's ``save_on_cpu`` is replaced by a recording subclass (same pack / unpack, plus a log). It must hold exactly
one tensor per decoder layer — that layer's input —, hand each back during the backward, and be the only change
against plain checkpointing: a GRPO step through TRL's trainer gives the same loss and LoRA gradients either way.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.autograd.graph import save_on_cpu

from lowvram_r1 import config
from lowvram_r1.backends import offload
from lowvram_r1.models.hardware import Hardware

LAYERS = 3
CPU = Hardware(cuda=False, name="cpu", memory_gb=0.0, bf16=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 3-layer Qwen2 with the tiny model's tokenizer (no training: weights need not be good)."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from lowvram_r1.models.tiny import ensure_tiny_tokenizer, spec_for

    folder = tmp_path_factory.mktemp("random-qwen2")
    tokenizer = AutoTokenizer.from_pretrained(ensure_tiny_tokenizer(spec_for("countdown")))
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            hidden_size=64,
            num_hidden_layers=LAYERS,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            intermediate_size=128,
            vocab_size=len(tokenizer),
            max_position_embeddings=256,
            tie_word_embeddings=True,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=None,
        )
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class Recorded:
    """What the offload hook did: tensors it packed, pin flags it was given, and unpacks (in backward or not)."""

    def __init__(self) -> None:
        self.packed: list[torch.Tensor] = []
        self.pinned: list[bool] = []
        self.unpacked_in_backward: list[bool] = []

    def hook_class(self) -> type:
        recorded = self

        class RecordingSaveOnCpu(save_on_cpu):
            def __init__(self, pin_memory: bool = False, device_type: str = "cuda") -> None:
                super().__init__(pin_memory=pin_memory, device_type=device_type)
                recorded.pinned.append(pin_memory)
                pack, unpack = self.pack_hook, self.unpack_hook

                def pack_and_record(tensor: torch.Tensor) -> Any:
                    packed = pack(tensor)
                    recorded.packed.append(packed[1])  # (device to return to, the tensor it holds)
                    return packed

                def unpack_and_record(packed: Any) -> torch.Tensor:
                    recorded.unpacked_in_backward.append(torch._C._current_autograd_node() is not None)
                    return unpack(packed)

                self.pack_hook, self.unpack_hook = pack_and_record, unpack_and_record

        return RecordingSaveOnCpu


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    log = Recorded()
    monkeypatch.setattr(offload, "save_on_cpu", log.hook_class())
    return log


def lora_model(model_dir: Path, checkpointing: bool | str) -> Any:
    """The hf backend's model and LoRA, with checkpointing switched on as transformers' Trainer does."""
    from peft import get_peft_model

    from lowvram_r1.backends.hf import load_hf, lora_config

    cfg = config.load(None, {"model": str(model_dir), "gradient_checkpointing": checkpointing})
    torch.manual_seed(1)
    model = get_peft_model(load_hf(cfg, str(model_dir), CPU)[0], lora_config(cfg))
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=None, every_n_layers=1, offload=False)
    return model.train()


def saved_outside(model: Any, ids: torch.Tensor) -> tuple[int, list[torch.Tensor]]:
    """Forward and backward; returns the bytes autograd saved outside the offload hook (parameters aside) and the
    input each decoder layer received."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}
    inputs: list[torch.Tensor] = []

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    layers = model.get_base_model().model.layers
    handles = [layer.register_forward_pre_hook(lambda _, args: inputs.append(args[0])) for layer in layers]
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        loss = model(input_ids=ids, labels=ids).loss
    for handle in handles:
        handle.remove()
    loss.backward()
    return sum(storages.values()), inputs


def test_offload_holds_exactly_each_layer_input_in_cpu_memory_until_the_backward(
    model_dir: Path, recorded: Recorded
) -> None:
    ids = torch.randint(0, 300, (2, 24))
    outside_plain, _ = saved_outside(lora_model(model_dir, True), ids)
    assert recorded.packed == []  # plain checkpointing never touches the offload hook
    outside_none, _ = saved_outside(lora_model(model_dir, False), ids)
    outside_offload, inputs = saved_outside(lora_model(model_dir, "offload"), ids)

    assert len(recorded.packed) == LAYERS and len(inputs) == LAYERS
    for packed, layer_input in zip(recorded.packed, inputs, strict=True):
        assert packed.device.type == "cpu" and packed.shape == (2, 24, 64)
        assert packed.untyped_storage().data_ptr() == layer_input.untyped_storage().data_ptr()  # on CPU: no copy
    assert recorded.pinned == [torch.cuda.is_available()] * LAYERS  # pinned host memory where CUDA is
    assert recorded.unpacked_in_backward == [True] * LAYERS  # each handed back once, by the backward
    held = sum(t.untyped_storage().nbytes() for t in recorded.packed)
    # the layer inputs moved from what autograd keeps to the hook, and nothing else changed
    assert outside_plain - outside_offload == held
    # and what checkpointing drops (every layer's attention and MLP activations) is still dropped: without
    # checkpointing each layer saves several times its input
    assert outside_none - outside_plain > 4 * held


def grpo_step(model_dir: Path, checkpointing: bool | str, out: Path) -> tuple[float, dict[str, torch.Tensor]]:
    """One GRPO step through TRL's trainer (TRL generates, so it switches checkpointing off and on around the
    rollout); returns the training loss and the LoRA gradients as the optimizer step sees them."""
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOTrainer

    from lowvram_r1.backends.hf import load_hf, lora_config
    from lowvram_r1.models.cpu_logprob import install

    install()
    cfg = config.load(
        None,
        {
            "model": str(model_dir),
            "gradient_checkpointing": checkpointing,
            "max_steps": 1,
            "batch-size": 4,
            "num_generations": 4,
            "gradient_accumulation_steps": 1,
            "max_prompt_length": 16,
            "max_completion_length": 12,
            "learning_rate": 1e-3,
            "seed": 3,
        },
    )
    args = config.to_grpo_config(cfg, out, use_cpu=True)
    args.save_strategy = "no"
    grads: dict[str, torch.Tensor] = {}

    class Gradients(TrainerCallback):
        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            grads.update({n: p.grad.detach().clone() for n, p in kwargs["model"].named_parameters() if p.requires_grad})

    def distinct_characters_reward(completions: list[str], **_: Any) -> list[float]:
        return [len(set(c)) / 10 for c in completions]  # differs between completions: non-zero advantages

    torch.manual_seed(3)
    trainer = GRPOTrainer(
        model=load_hf(cfg, str(model_dir), CPU)[0],
        reward_funcs=[distinct_characters_reward],
        args=args,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        train_dataset=Dataset.from_list([{"prompt": f"{a} + {a + 1} ="} for a in range(8)]),
        peft_config=lora_config(cfg),
        callbacks=[Gradients()],
    )
    return trainer.train().training_loss, grads


@pytest.mark.slow  # two GRPO steps through TRL's trainer (~25 s on 2 cores)
def test_a_grpo_step_with_offload_gives_the_loss_and_gradients_of_plain_checkpointing(
    model_dir: Path, recorded: Recorded, tmp_path: Path
) -> None:
    loss_plain, grads_plain = grpo_step(model_dir, True, tmp_path / "plain")
    assert recorded.packed == []
    loss_offload, grads_offload = grpo_step(model_dir, "offload", tmp_path / "offload")
    # the training forward after TRL's rollout offloaded every layer: the re-enable did not drop it
    assert len(recorded.packed) == LAYERS and recorded.unpacked_in_backward == [True] * LAYERS
    assert grads_plain.keys() == grads_offload.keys() and any("lora_A" in n for n in grads_plain)
    assert sum(g.abs().sum().item() for g in grads_plain.values()) > 0  # a step that learns something
    assert loss_offload == pytest.approx(loss_plain, rel=1e-6, abs=1e-9)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_offload[name], grad, msg=name)


def test_offload_survives_every_way_transformers_and_trl_switch_checkpointing_on(
    model_dir: Path, recorded: Recorded
) -> None:
    from trl.models.utils import disable_gradient_checkpointing

    model = lora_model(model_dir, "offload")
    ids = torch.randint(0, 300, (1, 8))
    calls = [
        lambda: model.gradient_checkpointing_enable(),  # TRL's unwrap_model_for_generation: no arguments
        lambda: model.gradient_checkpointing_enable({"use_reentrant": True}),  # reentrant checkpointing too
        lambda: model.gradient_checkpointing_enable({"offload": True, "use_reentrant": False}),  # transformers' key
    ]
    for index, switch_on in enumerate(calls, start=1):
        model.gradient_checkpointing_disable()
        switch_on()
        with disable_gradient_checkpointing(model, {"offload": True}):  # TRL's log-prob pass: back on after it
            pass
        model(input_ids=ids, labels=ids).loss.backward()
        assert len(recorded.packed) == LAYERS * index
    copy = deepcopy(model.get_base_model())  # e.g. a reference model: switching it on offloads its own layers
    copy.gradient_checkpointing_disable()
    copy.gradient_checkpointing_enable()
    copy(input_ids=ids, labels=ids).loss.backward()
    assert len(recorded.packed) == LAYERS * (len(calls) + 1)
