"""Rewards named on the command line: a ``trl.rewards`` reward, ``./file.py:fn`` or ``module:fn``.

    lowvram-r1 train --task countdown --reward ./r.py:brevity=0.1 --reward think_format_reward=0.2

A reward has TRL's signature ``fn(completions, **kwargs) -> list[float | None]``: it gets the completions and, as
keyword arguments, the dataset's columns (one value per completion) plus TRL's own (``prompts``,
``completion_ids``, ``trainer_state``, ...), so it must accept ``**kwargs``. ``None`` leaves a completion unscored.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from lowvram_r1.specs import is_object_spec, load_object

# trl.rewards' ready-made rewards (the get_* factories need arguments: wrap one in a file of your own)
TRL_REWARDS = ("accuracy_reward", "reasoning_accuracy_reward", "think_format_reward")
TRL_FACTORIES = ("get_cosine_scaled_reward", "get_repetition_penalty_reward", "get_soft_overlong_punishment")


def is_reward_spec(name: str) -> bool:
    """A spec that loads a reward (as opposed to the name of a reward the run has already)."""
    return name in TRL_REWARDS or name in TRL_FACTORIES or is_object_spec(name)


def needs_trl(settings: Any) -> bool:
    """Does the reward list of ``settings`` (a ``TaskSettings``) import trl: shaping on, or a ``trl.rewards`` name?"""
    named = getattr(settings, "rewards", None) or {}
    return bool(settings.overlong_buffer or settings.ngram_penalty or any(key in TRL_REWARDS for key in named))


def check_signature(fn: Any, spec: str) -> None:
    """TRL calls ``fn(prompts=..., completions=..., completion_ids=..., **columns)``: refuse what cannot take it."""
    if not callable(fn):
        raise ValueError(
            f"reward {spec} is a {type(fn).__name__}, not a function: name a function fn(completions, **kwargs)"
        )
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to inspect
    kinds = {p.kind for p in parameters}
    names = {p.name for p in parameters}
    # TRL passes everything by keyword: a positional-only parameter can never be filled (other named parameters
    # are dataset columns, e.g. fn(completions, answer, **kwargs); tasks --check says if the rows lack one)
    positional_only = [p.name for p in parameters if p.kind == p.POSITIONAL_ONLY and p.default is p.empty]
    takes_completions = "completions" in names or inspect.Parameter.VAR_KEYWORD in kinds
    if inspect.Parameter.VAR_KEYWORD not in kinds or not takes_completions or positional_only:
        raise ValueError(
            f"reward {spec} has the signature {getattr(fn, '__name__', spec)}{inspect.signature(fn)}; a reward is "
            "def fn(completions, **kwargs) -> list[float | None] (dataset columns arrive as keyword arguments: "
            "name them, fn(completions, answer, **kwargs), or read kwargs['answer'])"
        )


def load_reward(spec: str) -> Callable[..., list[float | None]]:
    """The reward function a spec names, its signature checked."""
    if spec in TRL_FACTORIES:
        raise ValueError(
            f"trl.rewards.{spec} makes a reward from arguments: call it in a file of your own "
            f"(fn = {spec}(...)) and pass --reward ./that_file.py:fn"
        )
    if spec in TRL_REWARDS:
        import trl.rewards

        fn = getattr(trl.rewards, spec)
    else:
        fn = load_object(spec, "reward")
    check_signature(fn, spec)
    return fn


def reward_name(fn: Any, spec: str) -> str:
    """The name TRL logs a reward under (``rewards/<name>/mean``): the function's ``__name__``."""
    return str(getattr(fn, "__name__", None) or spec.rpartition(":")[2])
