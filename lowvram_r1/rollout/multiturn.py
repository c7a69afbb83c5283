"""Multi-turn search rollouts for GRPO: the model writes until ``</search>``, the retriever's passages are appended
inside the task's observation tag, the model continues; up to ``max_turns`` searches; the episode ends at
``</answer>``, at EOS, or at the completion-length limit. The inserted tokens are returned as TRL's ``env_mask``
(0 = environment, 1 = model), so TRL multiplies them out of the loss (``completion_mask * tool_mask`` in
``GRPOTrainer._compute_loss``) — Search-R1's retrieved-token masking.

    rollout = SearchRollout(SearchEnvironment(settings), vllm=None)      # transformers generate
    rollout = SearchRollout(SearchEnvironment(settings), vllm=VLLMRollout(...))   # colocated vLLM, LoRA hot-swap
    trainer = GRPOTrainer(..., rollout_func=rollout)

Why a ``rollout_func`` and not TRL's ``tools`` / ``environment_factory``: TRL 1.15's tool loop parses
*chat-template tool calls* (``parse_response`` with the tokenizer's response schema) and answers them as ``tool``
messages rendered by the chat template. Search-R1-style models write plain ``<search>`` tags inside one assistant
message, base models used with the R1-Zero plain prompt have no chat template, and TRL's loop generates through
TRL's own generation only — not through our colocated vLLM engine with LoRA hot-swap. The ``rollout_func`` hook
with ``env_mask`` is TRL's documented way for a custom environment to do exactly this; the mask then flows through
TRL unchanged (loss, ``num_items_in_batch``, entropy, completion-length logs).

The model can never write its own observation: it is stopped the moment it opens an observation tag itself (the
episode ends there and the format rewards give nothing, see :mod:`lowvram_r1.rewards.trace`), and passages are
sanitised so no retrieved text carries a tag.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lowvram_r1.envs.search import STOP_STRINGS, SearchEnvironment
from lowvram_r1.rewards.trace import turn_query

logger = logging.getLogger(__name__)

# (input token ids per sequence, max new tokens) -> (new token ids per sequence, their log-probabilities or None)
Sampler = Callable[[list[list[int]], int], tuple[list[list[int]], list[list[float | None]] | None]]


@dataclass
class Episode:
    """One completion under construction: its tokens, which of them the model wrote, their sampling logprobs."""

    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)  # 1 = the model's token, 0 = inserted by the environment
    logprobs: list[float | None] = field(default_factory=list)
    searches: int = 0
    model_tokens: int = 0
    done: bool = False
    end: str = ""  # why it ended: answer, eos, length, search_limit, forged

    def add(self, ids: Sequence[int], model: bool, logprobs: Sequence[float | None] | None = None) -> None:
        self.ids += list(ids)
        self.mask += [int(model)] * len(ids)
        self.logprobs += list(logprobs) if logprobs is not None else [None] * len(ids)
        if model:
            self.model_tokens += len(ids)


def first_stop(text: str) -> str | None:
    """The stop string that occurs first in ``text`` (None: none does)."""
    found = [(text.find(s), s) for s in STOP_STRINGS if s in text]
    return min(found)[1] if found else None


def roll_out(
    prompt_ids: list[list[int]],
    sample: Sampler,
    tokenizer: Any,
    env: SearchEnvironment,
    max_completion_length: int,
    eos_token_ids: Sequence[int],
) -> list[Episode]:
    """Run every prompt's episode to its end, generating the still-running ones together each turn."""
    episodes = [Episode() for _ in prompt_ids]
    max_turns = env.settings.max_turns
    eos = set(eos_token_ids)
    for _ in range(max_turns + 1):  # each round ends an episode or adds one of at most max_turns searches
        active = [i for i, e in enumerate(episodes) if not e.done]
        if not active:
            break
        budgets = {i: max_completion_length - episodes[i].model_tokens for i in active}
        new_ids, new_logprobs = sample([prompt_ids[i] + episodes[i].ids for i in active], max(budgets.values()))
        asked: list[tuple[int, str]] = []
        for row, i in enumerate(active):
            episode, ids = episodes[i], list(new_ids[row])[: budgets[i]]
            episode.add(ids, True, None if new_logprobs is None else list(new_logprobs[row])[: len(ids)])
            text = tokenizer.decode(ids, skip_special_tokens=True)
            stop = first_stop(text)
            if ids and ids[-1] in eos:
                episode.done, episode.end = True, "eos"
            elif stop is None:
                episode.done, episode.end = True, "length"
            elif stop == "</search>":
                if episode.searches >= max_turns or episode.model_tokens >= max_completion_length:
                    episode.done, episode.end = True, "search_limit"
                else:
                    asked.append((i, turn_query(text)))
            else:  # </answer> ends the episode; an observation tag opened by the model is forgery: it ends too
                episode.add([next(iter(eos_token_ids))], False)  # EOS so TRL sees a finished, not truncated, one
                episode.done, episode.end = True, "answer" if stop == "</answer>" else "forged"
        if asked:
            blocks = env.observe_many([query for _, query in asked])
            encoded = tokenizer(blocks, add_special_tokens=False)["input_ids"]
            for (i, _), ids in zip(asked, encoded, strict=True):
                episodes[i].add(ids, False)
                episodes[i].searches += 1
    return episodes


def model_eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The token ids that end a completion: the model's generation config's, else the tokenizer's EOS."""
    eos = model.generation_config.eos_token_id
    return list(eos) if isinstance(eos, list) else [eos if eos is not None else tokenizer.eos_token_id]


def hf_sampler(
    model: Any,
    tokenizer: Any,
    temperature: float,
    top_p: float = 1.0,
    top_k: int = 0,
    min_p: float = 0.0,
    repetition_penalty: float = 1.0,
) -> Sampler:
    """Sampling with transformers ``generate``, stopping each sequence at its first stop string."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_ids = set(model_eos_ids(model, tokenizer))

    class StopAtStrings(StoppingCriteria):
        def __init__(self, start: int) -> None:
            self.start = start

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            tails = tokenizer.batch_decode(
                input_ids[:, max(self.start, input_ids.shape[1] - 24) :], skip_special_tokens=True
            )
            return torch.tensor([first_stop(t) is not None for t in tails], device=input_ids.device)

    def sample(inputs: list[list[int]], max_tokens: int) -> tuple[list[list[int]], None]:
        width = max(len(ids) for ids in inputs)
        device = next(model.parameters()).device
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in inputs], device=device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in inputs], device=device)
        options: dict[str, Any] = {"do_sample": temperature > 0}
        if temperature > 0:
            options.update(temperature=temperature, top_p=top_p, top_k=top_k or None, min_p=min_p or None)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    max_new_tokens=max(1, max_tokens),
                    stopping_criteria=StoppingCriteriaList([StopAtStrings(width)]),
                    pad_token_id=pad,
                    eos_token_id=list(eos_ids),
                    repetition_penalty=repetition_penalty,
                    **options,
                )
        finally:
            model.train(was_training)
        completions = []
        for row in out[:, width:].tolist():
            ids: list[int] = []
            for token in row:
                if token in eos_ids:
                    ids.append(token)
                    break
                if token == pad:
                    break
                ids.append(token)
            completions.append(ids)
        return completions, None

    return sample


class SearchRollout:
    """``rollout_func`` for ``trl.GRPOTrainer`` on a search task (see the module docstring); also the held-out
    generator, so evaluation searches as training does."""

    def __init__(self, env: SearchEnvironment, vllm: Any | None = None) -> None:
        self.env = env
        self.vllm = vllm  # a lowvram_r1.rollout.trl_rollout.VLLMRollout, or None: transformers generate
        self.ends: dict[str, int] = {}  # why episodes ended, counted (the log says it every batch)

    def _sampler(self, trainer: Any, temperature: float, sampling: bool = True) -> Sampler:
        if self.vllm is not None:
            extra = {
                **(trainer.args.generation_kwargs or {}),
                "stop": list(STOP_STRINGS),
                "include_stop_str_in_output": True,
            }
            params = {"temperature": temperature}
            if sampling:
                params.update(
                    top_p=trainer.top_p,
                    top_k=trainer.top_k or 0,
                    min_p=trainer.min_p or 0.0,
                    repetition_penalty=trainer.repetition_penalty,
                )

            def sample(inputs: list[list[int]], max_tokens: int) -> tuple[list[list[int]], list[list[float | None]]]:
                return self.vllm.sample(trainer, inputs, max_tokens, extra=extra, **params)

            return sample
        model = trainer.accelerator.unwrap_model(trainer.model)
        if not sampling:
            return hf_sampler(model, trainer.processing_class, temperature)
        return hf_sampler(
            model,
            trainer.processing_class,
            temperature,
            trainer.top_p,
            trainer.top_k or 0,
            trainer.min_p or 0.0,
            trainer.repetition_penalty,
        )

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        prompt_ids, images, _ = trainer._tokenize_prompts(prompts)
        if images is not None:
            raise ValueError("search rollouts take text prompts only")
        eos = list(getattr(trainer, "eos_token_ids", None) or [trainer.processing_class.eos_token_id])
        episodes = roll_out(
            prompt_ids,
            self._sampler(trainer, trainer.temperature),
            trainer.processing_class,
            self.env,
            trainer.max_completion_length,
            eos,
        )
        for e in episodes:
            self.ends[e.end] = self.ends.get(e.end, 0) + 1
        logger.debug("search rollouts: %s", self.ends)
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": [e.ids for e in episodes],
            "logprobs": [e.logprobs for e in episodes] if self.vllm is not None else None,
            "env_mask": [e.mask for e in episodes],
        }

    def generator(self, trainer: Any) -> Callable[[Sequence[Any], int, float], list[str]]:
        """``evaluate(generator=...)``: (prompts, max_new_tokens, temperature) -> completion texts, with search."""
        tokenizer = trainer.processing_class
        eos = list(getattr(trainer, "eos_token_ids", None) or [tokenizer.eos_token_id])
        return search_completer(self.env, tokenizer, lambda t: self._sampler(trainer, t, sampling=False), eos)


def search_completer(
    env: SearchEnvironment, tokenizer: Any, sampler_for: Callable[[float], Sampler], eos_token_ids: Sequence[int]
) -> Callable[[Sequence[Any], int, float], list[str]]:
    """A held-out generator (``evaluate(generator=...)``) whose completions search: each prompt's episode runs
    to its end with ``sampler_for(temperature)`` generating every turn."""

    def complete(prompts: Sequence[Any], max_new_tokens: int, temperature: float) -> list[str]:
        from lowvram_r1.models.prompts import prompt_text

        ids = tokenizer([prompt_text(tokenizer, p) for p in prompts], add_special_tokens=False)["input_ids"]
        episodes = roll_out(ids, sampler_for(temperature), tokenizer, env, max_new_tokens, eos_token_ids)
        return tokenizer.batch_decode([e.ids for e in episodes], skip_special_tokens=True)

    return complete


def model_search_generator(
    model: Any, tokenizer: Any, env: SearchEnvironment
) -> Callable[[Sequence[Any], int, float], list[str]]:
    """:func:`search_completer` on a plain (or peft) model with transformers ``generate``: ``lowvram-r1 eval``,
    rejection sampling and the panel's "Try it" search as training does."""
    return search_completer(env, tokenizer, lambda t: hf_sampler(model, tokenizer, t), model_eos_ids(model, tokenizer))


def with_environment(task: Any, options: dict[str, Any], loaded: Any) -> Any:
    """``loaded`` with its rollout function wrapped in a :class:`SearchRollout` when ``task`` has an environment
    (the backend's vLLM rollout, if any, generates each turn); ``loaded`` itself otherwise."""
    if task.environment is None:
        return loaded
    env = SearchEnvironment(task.environment(options))
    logger.info(
        "multi-turn rollouts: up to %d searches of top-%d passages (%s), retrieved tokens masked out of the loss",
        env.settings.max_turns,
        env.settings.top_k,
        env.settings.corpus_path(),
    )
    return replace(loaded, rollout_func=SearchRollout(env, vllm=loaded.rollout_func))
