"""The ``unsloth`` backend: Unsloth's patched 4-bit / 16-bit LoRA model, optionally with its colocated vLLM engine.

    from lowvram_r1.backends.unsloth import load_unsloth
    model, tokenizer = load_unsloth(cfg, "unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit")   # needs a CUDA GPU

This is the only module of the package that imports ``unsloth`` (a test checks it), and only inside
:func:`import_unsloth`, so importing this module is free. What it does, in the order Unsloth requires:

1. ``UNSLOTH_VLLM_STANDBY=1`` when ``model.unsloth_standby`` is set: Unsloth reads it while importing (it then
   turns off torch's expandable segments, which vLLM's sleep mode cannot share memory with), so it must be set
   before the import — this is how standby is switched on in 2026.10.9;
2. ``import unsloth`` before transformers / trl / peft. Unsloth patches them at import; when one of them is
   already imported it only warns and trains slower, so we refuse instead and say how to fix the order;
3. ``FastLanguageModel.from_pretrained(..., fast_inference=use_vllm)``: with vLLM on, Unsloth starts one vLLM
   engine that shares the weights with training (``model.vllm_engine``);
4. ``FastLanguageModel.get_peft_model(..., use_gradient_checkpointing="unsloth")``: Unsloth's offloaded
   checkpointing, which keeps the saved activations in CPU RAM (for ``true``, its default, and ``offload``).

Importing unsloth also replaces ``trl.GRPOTrainer`` / ``trl.GRPOConfig`` with Unsloth's patched subclasses, so
the engine's ordinary ``from trl import GRPOTrainer`` afterwards gets Unsloth's trainer: it reuses
``model.vllm_engine`` instead of starting a second vLLM, and hands the live LoRA tensors to every rollout
(``model.load_lora(..., load_tensors=True)``), so vLLM always samples from the current adapter.

The keyword dicts are built by pure functions (:func:`from_pretrained_kwargs`, :func:`peft_kwargs`) so that a test
can check exactly what we pass against Unsloth's published source, without a GPU.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from lowvram_r1.backends.base import Backend, Generator, Loaded
from lowvram_r1.config import RunConfig
from lowvram_r1.models.hardware import Hardware, unsloth_environment
from lowvram_r1.models.source import loads_4bit
from lowvram_r1.run_plan import RunPlan

logger = logging.getLogger(__name__)

STANDBY_ENV = "UNSLOTH_VLLM_STANDBY"
PATCHED_BY_UNSLOTH = ("transformers", "trl", "peft")  # what Unsloth must import first (unsloth/_gpu_init.py)
# What peft's "all-linear" means for the decoder models we train (Qwen2/Qwen3/Llama): every projection, no
# lm_head. Unsloth's fused LoRA kernels are written for these names, so we spell them out.
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def unsloth_installed() -> bool:
    """Is unsloth importable? Answered from the package index alone: importing it needs a GPU and patches libraries."""
    return importlib.util.find_spec("unsloth") is not None


def check_unsloth_options(cfg: RunConfig) -> None:
    """Refuse, before loading, what Unsloth 2026.10.9 would reject only after minutes of loading."""
    if cfg.model.dtype == "float32":
        # from_pretrained converts only the "float16"/"bfloat16" strings (loader.py) and asserts on the rest
        raise ValueError(
            "--dtype float32 is not supported by the unsloth backend: use --dtype auto (bf16 or fp16 by GPU), "
            "or --backend hf for float32"
        )
    if cfg.model.trust_remote_code and cfg.generation.use_vllm:
        raise ValueError(
            "Unsloth's vLLM engine (fast_inference) does not run custom model code: drop --trust-remote-code, "
            "or drop --use-vllm (Unsloth's own generation), or use --backend hf"
        )
    if cfg.generation.use_vllm and cfg.generation.vllm_mode == "server":
        raise ValueError(
            "the unsloth backend generates with its own colocated vLLM engine, not a vLLM server: pass --backend hf "
            "for --vllm-mode server, or drop --vllm-mode server"
        )


def target_modules(cfg: RunConfig) -> list[str]:
    targets = cfg.lora.target_modules
    if targets == "all-linear":
        return list(ALL_LINEAR)
    return [t.strip() for t in targets.split(",") if t.strip()]


def from_pretrained_kwargs(cfg: RunConfig, model_path: str) -> dict[str, Any]:
    """What we pass to ``FastLanguageModel.from_pretrained`` (checked against Unsloth's source by a test)."""
    g = cfg.generation
    kwargs: dict[str, Any] = {
        "model_name": model_path,
        "max_seq_length": g.max_prompt_length + g.max_completion_length,
        # A pre-quantised checkpoint is 4-bit whatever the flag says: with load_in_4bit=False Unsloth would swap in
        # the 16-bit original (unsloth/models/loader_utils.py, INT_TO_FLOAT_MAPPER) and download 3x more.
        "load_in_4bit": loads_4bit(cfg, model_path),
        "dtype": None if cfg.model.dtype == "auto" else cfg.model.dtype,  # None: Unsloth picks bf16 / fp16
        "trust_remote_code": cfg.model.trust_remote_code,
        "random_state": cfg.training.seed,
        "fast_inference": g.use_vllm,
    }
    if g.use_vllm:  # vLLM engine sizing: only meaningful when Unsloth starts one
        kwargs["gpu_memory_utilization"] = g.vllm_gpu_memory_utilization
        kwargs["max_lora_rank"] = cfg.lora.r  # vLLM reserves LoRA slots of this rank; ours must fit
    return kwargs


def unsloth_checkpointing(mode: bool | str) -> bool | str:
    """Our ``model.gradient_checkpointing`` in Unsloth's words (``get_peft_model(use_gradient_checkpointing=...)``).

    ``offload`` is Unsloth's own offloaded mode, ``"unsloth"``. ``true`` is Unsloth's default, which in 2026.10.9 is
    that same ``"unsloth"`` (``FastLlamaModel.get_peft_model``'s default; a test reads it from the wheel), so on
    this backend ``true`` and ``offload`` both offload. Either way Unsloth itself switches to plain checkpointing for
    sequences under 512 tokens (``apply_unsloth_gradient_checkpointing``: offloading does not pay there).
    """
    return "unsloth" if mode else False


def peft_kwargs(cfg: RunConfig) -> dict[str, Any]:
    """What we pass to ``FastLanguageModel.get_peft_model`` besides the model (checked by the same test)."""
    return {
        "r": cfg.lora.r,
        "lora_alpha": cfg.lora.alpha,
        "lora_dropout": cfg.lora.dropout,
        "target_modules": target_modules(cfg),
        "use_gradient_checkpointing": unsloth_checkpointing(cfg.model.gradient_checkpointing),
        "random_state": cfg.training.seed,
    }


def import_unsloth(standby: bool, strict: bool = True, hardware: Hardware | None = None) -> Any:
    """Set the variables Unsloth reads at import (:func:`~lowvram_r1.models.hardware.unsloth_environment`), import
    unsloth first, and return ``FastLanguageModel``.

    Raises ``RuntimeError`` (with what to do) when the import order can no longer be right in this process;
    ``strict=False`` (loading for export, no training) logs a warning instead for transformers/trl/peft.
    """
    if hardware is None:
        from lowvram_r1.models.hardware import detect_hardware

        hardware = detect_hardware()  # torch only: Unsloth does not need to come before torch
    wanted = unsloth_environment(hardware, standby)
    if "unsloth" in sys.modules:
        if os.environ.get(STANDBY_ENV, "0") != wanted[STANDBY_ENV]:
            raise RuntimeError(
                f"unsloth is already imported with {STANDBY_ENV}={os.environ.get(STANDBY_ENV, '0')}, but this run "
                f"wants {wanted[STANDBY_ENV]}: Unsloth reads it only at import. Start a new Python process for this run"
            )
        # the rest is read again at each load (unsloth_zoo's load_vllm reads UNSLOTH_VLLM_NO_FLASHINFER there): a
        # notebook that imported unsloth first, as Unsloth advises, still gets it
        os.environ.update({name: value for name, value in wanted.items() if name != STANDBY_ENV})
    else:
        early = [name for name in PATCHED_BY_UNSLOTH if name in sys.modules]
        if early and strict:
            raise RuntimeError(
                f"{', '.join(early)} was imported before unsloth, so Unsloth cannot patch it (slower training, "
                "more memory). Start a new process and call lowvram_r1.train.engine.train before importing "
                f"{', '.join(early)} (in a notebook: restart the kernel, import unsloth first), or use --backend hf"
            )
        if early:
            logger.warning("%s imported before unsloth: fine for loading, not for training", ", ".join(early))
        os.environ.update(wanted)
    import unsloth  # noqa: F401  (import order is the point: it patches transformers, trl and peft)
    from unsloth import FastLanguageModel

    return FastLanguageModel


def load_unsloth(cfg: RunConfig, model_path: str) -> tuple[Any, Any]:
    """Unsloth model with its LoRA adapter already attached (and ``model.vllm_engine`` when ``use_vllm``).

    The returned model is a peft model: the engine gives TRL's GRPOTrainer no ``peft_config`` for it.
    """
    fast_language_model = import_unsloth(cfg.model.unsloth_standby)
    kwargs = from_pretrained_kwargs(cfg, model_path)
    logger.info(
        "unsloth: loading %s (4-bit %s, vLLM rollouts %s, standby %s)",
        model_path,
        kwargs["load_in_4bit"],
        "on" if kwargs["fast_inference"] else "off",
        "on" if cfg.model.unsloth_standby else "off",
    )
    model, tokenizer = fast_language_model.from_pretrained(**kwargs)
    model = fast_language_model.get_peft_model(model, **peft_kwargs(cfg))
    if cfg.generation.use_vllm and getattr(model, "vllm_engine", None) is None:
        # from_pretrained silently falls back to Unsloth's own generate on GPUs vLLM does not support
        # (compute capability < 7) or when vLLM is missing; say so instead of training slowly in silence.
        logger.warning("unsloth: vLLM did not start (GPU too old or vllm missing); rollouts use Unsloth's generate")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def held_out_generator(model: Any, tokenizer: Any) -> Generator | None:
    """Held-out evaluation through Unsloth's colocated vLLM engine (``model.vllm_engine``) with the live adapter,
    as the rollouts use it; None when Unsloth started no engine (then eval uses transformers ``generate``).

    Each call hands vLLM the adapter as it is now (``model.load_lora(..., load_tensors=True)``: tensors in memory,
    nothing written), so the step-0 eval sees the fresh adapter and the final one the trained adapter.
    """
    engine = getattr(model, "vllm_engine", None)
    if engine is None:
        return None

    def complete(prompts: Sequence[Any], max_new_tokens: int, temperature: float) -> list[str]:
        from vllm import SamplingParams

        from lowvram_r1.models.prompts import prompt_text
        from lowvram_r1.rollout.vllm_engine import wake

        wake(engine)  # standby leaves vLLM asleep between rollouts
        prompt_ids = tokenizer([prompt_text(tokenizer, p) for p in prompts], add_special_tokens=False)["input_ids"]
        sampling = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=1.0)
        outputs = engine.generate(
            [{"prompt_token_ids": ids} for ids in prompt_ids],
            sampling_params=sampling,
            lora_request=model.load_lora("lowvram_r1_eval", load_tensors=True),
            use_tqdm=False,
        )
        return [output.outputs[0].text for output in outputs]

    return complete


class UnslothBackend(Backend):
    """Unsloth's patched model and trainer; its own colocated vLLM engine drives the rollouts (``fast_inference``)."""

    name = "unsloth"
    imports_first = True

    @classmethod
    def available(cls, cfg: RunConfig, cuda: bool) -> tuple[bool, str]:
        if cfg.model.name == "tiny":
            return False, "the built-in tiny model always uses hf (it is a CPU demo model)"
        if not cuda:
            return False, "no CUDA GPU (unsloth needs one)"
        if not unsloth_installed():
            return False, "unsloth is not installed (pip install -e '.[gpu]' for the fast path)"
        return True, "a CUDA GPU and unsloth are present"

    def check(self, plan: RunPlan, tokenizer_source: str) -> None:
        from lowvram_r1.rollout import check_vllm_quantization

        cfg = plan.cfg
        check_vllm_quantization(cfg, tokenizer_source)  # Unsloth's fast_inference needs vLLM's bnb plugin too
        check_unsloth_options(cfg)
        # before anything imports transformers / trl / peft: Unsloth must patch them first
        import_unsloth(cfg.model.unsloth_standby, hardware=plan.hardware)

    def load(self, plan: RunPlan, model_path: str, rollouts: bool = True) -> Loaded:
        # no rollout function: Unsloth's patched GRPOTrainer drives its own vLLM; the model carries its adapter
        model, tokenizer = load_unsloth(plan.cfg, model_path)
        return Loaded(model, tokenizer, peft_config=None, rollout_func=None)

    def held_out_generator(self, loaded: Loaded, trainer: Any) -> Generator | None:
        return held_out_generator(trainer.model, loaded.tokenizer)
