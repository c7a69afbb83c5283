"""The ``hf`` backend: transformers + bitsandbytes 4-bit (NF4, QLoRA) + peft LoRA, on any device (CUDA, CPU, and
whatever else torch runs on), with rollouts from our colocated vLLM engine (LoRA hot-swap) or TRL's ``generate``.
Gradient checkpointing is switched on by the trainer (``GRPOConfig.gradient_checkpointing``) or by peft for 4-bit;
``offload`` makes the model offload it whoever does (:mod:`lowvram_r1.backends.offload`).

    backend = HfBackend()
    loaded = backend.load(plan, model_path)    # model, tokenizer, peft config, rollout function (run_plan.RunPlan)
"""

from __future__ import annotations

import logging
from typing import Any

from lowvram_r1.backends.base import Backend, Generator, Loaded
from lowvram_r1.config import RunConfig
from lowvram_r1.models.hardware import Hardware, torch_dtype
from lowvram_r1.models.source import bnb_checkpoint, loads_4bit
from lowvram_r1.run_plan import RunPlan

logger = logging.getLogger(__name__)


class HfBackend(Backend):
    """Runs everywhere: the fallback of ``--backend auto`` and the one backend SFT and the tiny model use."""

    name = "hf"

    @classmethod
    def available(cls, cfg: RunConfig, cuda: bool) -> tuple[bool, str]:
        return True, "the transformers + peft backend, available everywhere"

    def check(self, plan: RunPlan, tokenizer_source: str) -> None:
        from lowvram_r1.rollout import check_vllm_quantization, check_vllm_server

        check_vllm_quantization(plan.cfg, tokenizer_source)  # 4-bit + vLLM without vllm-bnb-plugin: refused now
        check_vllm_server(plan, tokenizer_source)  # --vllm-mode server: up, LoRA at run time, long enough

    def load(self, plan: RunPlan, model_path: str, rollouts: bool = True) -> Loaded:
        rollout_func = None
        if rollouts:
            from lowvram_r1.rollout import make_rollout

            rollout_func = make_rollout(plan, model_path)  # vLLM with LoRA hot-swap, or None: TRL generates
        model, tokenizer = load_hf(plan.cfg, model_path, plan.hardware)
        return Loaded(model, tokenizer, lora_config(plan.cfg), rollout_func)

    def held_out_generator(self, loaded: Loaded, trainer: Any) -> Generator | None:
        # ours (vLLM with LoRA hot-swap) when training uses it; None: transformers generate
        return loaded.rollout_func.generator(trainer) if loaded.rollout_func is not None else None


def load_hf(cfg: RunConfig, path: str, hardware: Hardware) -> tuple[Any, Any]:
    """transformers model (4-bit NF4 through bitsandbytes when asked) and its tokenizer, ready for peft LoRA."""
    from accelerate import PartialState
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
        device_map={"": PartialState().local_process_index} if hardware.cuda else None,  # this process's GPU
        **extra,  # quantization_config=None would override a 4-bit checkpoint's own and fail to load it
    )
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    checkpointing = cfg.model.gradient_checkpointing
    if checkpointing == "offload":  # before anything switches checkpointing on: peft here, or the trainer
        from lowvram_r1.backends.offload import offload_checkpoints

        offload_checkpoints(model)
    if loads_4bit(cfg, path):
        from peft import prepare_model_for_kbit_training

        if not hardware.cuda:
            keep_cpu_4bit_trainable(model)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(checkpointing))
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
