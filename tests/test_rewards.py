"""Shared reward pieces on literal completions, one comment per case."""

from __future__ import annotations

import pytest

from lowvram_r1.rewards import reflection_reward, soft_format_reward, strict_format_reward, tag_count_reward
from lowvram_r1.rewards.f1 import answer_f1, exact_match
from lowvram_r1.rewards.penalties import OverlongPenalty, RepetitionPenalty

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


def test_overlong_penalty_ramps_down() -> None:
    overlong = OverlongPenalty(max_chars=100, soft_chars=20)
    assert overlong(["x" * 80, "x" * 90, "x" * 100, "x" * 500]) == [0.0, -0.5, -1.0, -1.0]


def test_repetition_penalty() -> None:
    penalty = RepetitionPenalty(ngram=2, max_penalty=-1.0)
    assert penalty(["a b c d"]) == [0.0]  # no repeated bigram
    assert penalty(["a b a b a b"])[0] == pytest.approx(-0.6)  # 2 distinct bigrams out of 5
    assert penalty([""]) == [0.0]


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
