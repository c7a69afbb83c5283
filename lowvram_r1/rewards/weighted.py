"""The one reward list of a run: every reward with its weight, in the order the trainer gets them.

    rewards = reward_list(task, cfg.task, cfg.generation.max_completion_length)
    [(r.name, r.weight) for r in rewards]      # the task's, shaping, --reward ones, then the weight-0 monitors

The trainer (reward functions and ``reward_weights``), ``lowvram-r1 score``, ``lowvram-r1 tasks``, eval and the
recorder all read this list, so ``score``'s total is the total the trainer optimises. Weights are overridden by
name (``task.rewards: {name: weight}``, ``--reward NAME=WEIGHT``; 0 keeps a reward as a logged monitor), and a
name that is a spec (``./r.py:fn``, ``module:fn``, a ``trl.rewards`` name) adds that reward. The older
``task.reward_weights`` (one weight per task reward, by position) still applies first.

Every reward runs inside :class:`GuardedReward` in training: one that raises scores that completion ``None``
(TRL leaves it out), counts it under ``rewards/<name>/errors`` in metrics.jsonl and logs the first traceback.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lowvram_r1.rewards.monitor import REFLECTION_REWARD, CheckReward, reflection_reward
from lowvram_r1.rewards.user import is_reward_spec, load_reward, reward_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightedReward:
    """One reward of a run: its logged name, the function (TRL's signature), its weight and where it came from
    (``task``, ``shaping``, ``added`` by --reward, ``monitor``)."""

    name: str
    fn: Callable[..., list[float | None]]
    weight: float
    source: str


def reward_list(task: Any, settings: Any, max_completion_length: int) -> list[WeightedReward]:
    """The run's rewards for ``task`` (a ``Task``) under ``settings`` (a ``TaskSettings``); a bad override or spec
    is a ``ValueError`` naming it."""
    from lowvram_r1.rewards.shaping import shaping_rewards

    weights = list(task.reward_weights) if settings.reward_weights is None else list(settings.reward_weights)
    rewards = [
        WeightedReward(fn.__name__, fn, float(w), "task") for fn, w in zip(task.reward_funcs, weights, strict=True)
    ]
    rewards += [
        WeightedReward(reward_name(fn, ""), fn, 1.0, "shaping")
        for fn in shaping_rewards(settings, max_completion_length)
    ]
    monitors = [
        WeightedReward(CheckReward(task.check).__name__, CheckReward(task.check), 0.0, "monitor"),
        WeightedReward(REFLECTION_REWARD, reflection_reward, 0.0, "monitor"),
    ]
    by_name = {r.name: i for i, r in enumerate([*rewards, *monitors])}
    for key, weight in (getattr(settings, "rewards", None) or {}).items():
        weight = float(weight)
        if key in by_name:
            index = by_name[key]
            target = rewards if index < len(rewards) else monitors
            offset = 0 if target is rewards else len(rewards)
            old = target[index - offset]
            target[index - offset] = WeightedReward(old.name, old.fn, weight, old.source)
        elif is_reward_spec(key):
            fn = load_reward(key)
            name = reward_name(fn, key)
            if name in by_name:
                raise ValueError(
                    f"reward {key} is named {name}, as the run's reward {name} already is: rename the function "
                    f"(or write --reward {name}=WEIGHT to re-weight the existing one)"
                )
            rewards.append(WeightedReward(name, fn, weight, "added"))
            by_name = {r.name: i for i, r in enumerate([*rewards, *monitors])}
        else:
            raise ValueError(
                f"unknown reward '{key}' for task {task.name}: its rewards are {', '.join(by_name)}; to add one, give "
                "a spec (./file.py:fn, module:fn) or a trl.rewards name (accuracy_reward, think_format_reward, ...)"
            )
    return [*rewards, *monitors]


def parse_reward_flag(text: str) -> tuple[str, float]:
    """``--reward SPEC[=WEIGHT]`` → (spec, weight); no weight means 1.0."""
    spec, sep, weight = str(text).rpartition("=") if "=" in str(text) else (str(text), "", "1")
    try:
        value = float(weight)
    except ValueError:
        raise ValueError(f"--reward {text}: the weight after '=' must be a number, e.g. --reward {spec}=0.5") from None
    if not spec or not math.isfinite(value):
        raise ValueError(f"--reward {text}: write --reward NAME_OR_SPEC[=WEIGHT], e.g. --reward ./r.py:fn=0.1")
    return spec, value


def weighted_total(rewards: Sequence[WeightedReward], values: Sequence[float | None]) -> float:
    """TRL's total for one completion: the weighted sum, a ``None`` counting as nothing (``nansum``)."""
    return sum(r.weight * v for r, v in zip(rewards, values, strict=True) if v is not None and not math.isnan(v))


def score_one(
    rewards: Sequence[WeightedReward], completion: Any, row: Mapping[str, Any], **extra: Any
) -> tuple[list[float | None], dict[str, str]]:
    """Each reward's value for one completion of one dataset row, called as the trainer calls it (a failing reward
    scores ``None``, as in training), and what each failing reward said."""
    columns = {key: [value] for key, value in row.items() if key != "prompt"}
    values, errors = [], {}
    for r in rewards:
        guarded = GuardedReward(r.fn, r.name, quiet=True)
        values.append(guarded([completion], **columns, **extra)[0])
        if guarded.last_error:
            errors[r.name] = guarded.last_error
    return values, errors


class RewardError(ValueError):
    """A reward returned what TRL cannot use: the wrong number of values, or something not a number."""


def checked_values(values: Any, count: int, name: str) -> list[float | None]:
    """``values`` as floats / None, or a :class:`RewardError` naming the reward."""
    if not isinstance(values, Sequence) or isinstance(values, str | bytes):
        raise RewardError(f"reward {name} returned a {type(values).__name__}; it must return a list of numbers")
    if len(values) != count:
        raise RewardError(f"reward {name} returned {len(values)} values for {count} completions (one each, please)")
    out: list[float | None] = []
    for value in values:
        if value is None:
            out.append(None)
        elif isinstance(value, numbers.Real):
            out.append(None if math.isnan(float(value)) else float(value))
        else:
            raise RewardError(
                f"reward {name} returned {type(value).__name__} {str(value)[:60]!r}; numbers or None only"
            )
    return out


class GuardedReward:
    """``fn`` that never raises in training: a completion it fails on scores ``None``; errors are counted in the
    trainer's metrics as ``rewards/<name>/errors`` (completions per generation batch, all processes) and the first
    traceback is logged with its completion."""

    def __init__(self, fn: Callable[..., Any], name: str, quiet: bool = False) -> None:
        self.fn, self.__name__, self.quiet = fn, name, quiet
        self.reported = False
        self.last_error = ""  # quiet: what the last failure said (score and tasks --check print it)

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        count = len(completions)
        try:
            values, errors = checked_values(self.fn(completions=completions, **kwargs), count, self.__name__), 0
        except RewardError as error:
            self._report(str(error), completions[0] if completions else "")
            values, errors = [None] * count, count
        except Exception:
            values, errors = self._one_by_one(completions, kwargs)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):  # TRL averages a metric over processes: times the process count, a sum
            log_metric(f"rewards/{self.__name__}/errors", float(errors * int(os.environ.get("WORLD_SIZE", "1"))))
        return values

    def _one_by_one(self, completions: list[Any], kwargs: dict[str, Any]) -> tuple[list[float | None], int]:
        """Retry each completion alone, so one bad completion does not cost the batch its scores."""
        count, values, errors = len(completions), [], 0
        for i, completion in enumerate(completions):
            single = {k: [v[i]] if isinstance(v, list) and len(v) == count else v for k, v in kwargs.items()}
            try:
                values.append(checked_values(self.fn(completions=[completion], **single), 1, self.__name__)[0])
            except Exception as error:  # a user's reward may raise anything: counted, never fatal
                detail = (
                    str(error)
                    if isinstance(error, RewardError)
                    else "".join(traceback.format_exception(error, limit=-3, chain=False))
                )
                self._report(detail, completion)
                values.append(None)
                errors += 1
        return values, errors

    def _report(self, detail: str, completion: Any) -> None:
        if self.quiet:
            self.last_error = detail.strip().splitlines()[-1] if detail.strip() else "failed"
            return
        if not self.reported:
            self.reported = True
            logger.warning(
                "reward %s failed (the completion scores None; counted as rewards/%s/errors in metrics.jsonl; "
                "only this first one is logged):\n%s\ncompletion: %r",
                self.__name__,
                self.__name__,
                detail.rstrip(),
                str(completion)[:500],
            )
