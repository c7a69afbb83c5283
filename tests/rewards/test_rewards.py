"""Shared reward pieces on literal completions, one comment per case."""

from __future__ import annotations

import pytest

from lowvram_r1.rewards import reflection_reward, soft_format_reward, strict_format_reward, tag_count_reward
from lowvram_r1.rewards.f1 import answer_f1, exact_match

GOOD = "<think>\n2 + 2 = 4\n</think>\n<answer>\n4\n</answer>\n"


@pytest.mark.parametrize(
    ("completion", "strict", "soft", "tags"),
    [
        (GOOD, 1.0, 1.0, 1.0),  # the canonical layout
        ("<think>2+2=4</think> <answer>4</answer>", 0.0, 1.0, 1.0),  # no newlines: soft only
        ("Sure! <think>2+2</think><answer>4</answer>", 0.0, 1.0, 1.0),  # a short preamble is soft-ok
        ("<answer>4</answer>", 0.0, 0.0, 0.5),  # no think block: half the tags
        ("<think>a</think><think>b</think><answer>4</answer>", 0.0, 1.0, 0.5),  # think tags twice
        (GOOD + "trailing chatter", 0.0, 0.0, 0.984),  # text after </answer> costs a little
        ("<answer>4</answer><think>x</think>", 0.0, 0.0, 0.984),  # wrong order: all tags, less the tail
        ("", 0.0, 0.0, 0.0),
    ],
)
def test_format_rewards(completion: str, strict: float, soft: float, tags: float) -> None:
    assert strict_format_reward([completion]) == [strict]
    assert soft_format_reward([completion]) == [soft]
    assert tag_count_reward([completion]) == [pytest.approx(tags)]


@pytest.mark.parametrize(
    ("completion", "count"),
    [
        ("Wait, let me check: 3*4 is 12.", 2.0),  # "wait" and "let me check"
        ("I will verify and double-check.", 2.0),
        ("Awaiting results; this is verified.", 0.0),  # whole words only
        ("", 0.0),
    ],
)
def test_reflection_counts_phrases(completion: str, count: float) -> None:
    assert reflection_reward([completion]) == [count]


def test_shaping_rewards_are_trls_and_off_by_default() -> None:
    from lowvram_r1 import config
    from lowvram_r1.rewards.shaping import shaping_rewards

    assert shaping_rewards(config.load(None).task, 100) == []
    overlong, repeated = shaping_rewards(config.load(None, {"overlong_buffer": 20, "ngram_penalty": -1.0}).task, 100)
    assert type(overlong).__module__ == type(repeated).__module__ == "trl.rewards.other_rewards"
    assert overlong(completion_ids=[[1] * 80, [1] * 90, [1] * 120]) == [0.0, -0.5, -1.0]  # DAPO's ramp, on tokens
    assert repeated(completion_ids=[[1, 2, 3, 4], [5] * 6])[0] == 0.0 and repeated(completion_ids=[[5] * 6])[0] < 0


def test_shaping_options_are_checked() -> None:
    from lowvram_r1 import config

    with pytest.raises(ValueError, match="ngram_penalty"):
        config.load(None, {"ngram_penalty": 0.5})


@pytest.mark.parametrize(
    ("prediction", "golds", "f1", "em"),
    [
        ("The Eiffel Tower", ["Eiffel tower"], 1.0, True),  # articles and case ignored
        ("Eiffel", ["Eiffel Tower"], 2 / 3, False),  # precision 1, recall 1/2
        ("Paris", ["London", "paris."], 1.0, True),  # best of several golds, punctuation ignored
        ("", ["Paris"], 0.0, False),
        (None, ["Paris"], 0.0, False),  # no <answer> at all
    ],
)
def test_answer_f1(prediction: str | None, golds: list[str], f1: float, em: bool) -> None:
    assert answer_f1(prediction, golds) == pytest.approx(f1)
    assert exact_match(prediction, golds) is em


def test_correctness_is_checked_once_per_completion(monkeypatch: pytest.MonkeyPatch) -> None:
    """The task's correctness reward and the weight-0 monitor share one verdict: one math-verify run each."""
    from lowvram_r1.rewards.monitor import CheckReward
    from lowvram_r1.tasks import get_task
    from lowvram_r1.tasks import math as math_task

    calls: list[str] = []
    real = math_task.is_equivalent
    monkeypatch.setattr(math_task, "is_equivalent", lambda a, g: calls.append(a) or real(a, g))
    task = get_task("math")
    completions = [f"<think>x</think><answer>\\boxed{{{n}}}</answer> once {id(calls)}" for n in (3, 4, 5)]
    columns = {"answer": ["3", "4", "6"], "prompt": ["p1", "p2", "p3"], "trainer_state": None}
    reward = next(f for f in task.reward_funcs if f.__name__ == "math_correctness_reward")
    assert reward(completions, **columns) == [1.0, 1.0, 0.0]
    assert CheckReward(task.check)(completions, **columns) == [1.0, 1.0, 0.0]
    assert len(calls) == 3  # not 6
