"""Countdown: the safe arithmetic walker, the check, the rewards and the generator, on literal completions."""

from __future__ import annotations

from fractions import Fraction

import pytest

from lowvram_r1.rewards.arithmetic import evaluate, numbers_in
from lowvram_r1.tasks import TASKS, Split
from lowvram_r1.tasks.countdown import check, equation_reward, format_reward, generate_puzzles

ROW = {"nums": [19, 36, 55, 7], "target": 65}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(1/3)*3", Fraction(1)),  # exact rationals, not floats
        ("55 + 36 - 19 - 7", Fraction(65)),
        ("(25 - 5) × 3", Fraction(60)),  # unicode times
        ("12 ÷ 4", Fraction(3)),  # unicode divide
        ("3 + 4 = 7", Fraction(7)),  # "expr = target" scores the left side
        ("1/0", None),  # division by zero
        ("2**10", None),  # no power
        ("__import__('os')", None),  # no names, no calls
        ("1 +", None),  # syntax error
        ("(" * 40 + "1" + ")" * 40, Fraction(1)),  # redundant parentheses are fine
        ("(" * 150 + "1" + ")" * 150, None),  # over the length bound
        ("-" * 100 + "1", None),  # over the depth bound
        ("9" * 30, None),  # beyond the magnitude bound
        ("", None),
    ],
)
def test_evaluate(text: str, expected: Fraction | None) -> None:
    assert evaluate(text) == expected


def test_numbers_in_ignores_target_side() -> None:
    assert numbers_in("55 + 36 - 19 - 7 = 65") == [55, 36, 19, 7]


@pytest.mark.parametrize(
    ("completion", "correct"),
    [
        ("<think>ok</think><answer>55 + 36 - 19 - 7</answer>", True),
        ("<think>ok</think><answer>55 + 36 - 19 - 7 = 65</answer>", True),  # with "= target"
        ("<think>ok</think><answer>55 + 36 - 19</answer>", False),  # a number unused
        ("<think>ok</think><answer>55 + 36 - 19 - 7 + 7 - 7</answer>", False),  # a number used twice
        ("<think>ok</think><answer>55 + 36 - 19 - 6</answer>", False),  # a number not given
        ("<think>ok</think><answer>55 + 36 - 19 * 7</answer>", False),  # wrong value
        ("55 + 36 - 19 - 7", False),  # no answer tags
        ("", False),
    ],
)
def test_check(completion: str, correct: bool) -> None:
    assert check(completion, ROW) is correct


def test_rewards_take_conversational_completions() -> None:
    good = [{"role": "assistant", "content": "<think>x</think>\n<answer>55 + 36 - 19 - 7</answer>"}]
    assert equation_reward([good, "junk"], nums=[ROW["nums"]] * 2, target=[65, 65]) == [1.0, 0.0]
    assert format_reward([good, "junk"]) == [1.0, 0.0]


def test_generator_is_seeded_and_splits_are_disjoint() -> None:
    options = {**TASKS["countdown"].default_options, "max_number": 9, "min_numbers": 3, "max_numbers": 3}
    test_a, train_a = generate_puzzles(0, 50, 300, options)
    test_b, _ = generate_puzzles(0, 50, 300, options)
    assert test_a == test_b
    test_keys = {(tuple(sorted(p["nums"])), p["target"]) for p in test_a}
    assert not test_keys & {(tuple(sorted(p["nums"])), p["target"]) for p in train_a}
    for puzzle in test_a + train_a:  # the recorded solution really solves the puzzle
        assert check(f"<answer>{puzzle['solution']}</answer>", puzzle)


def test_reference_completion_scores_full_marks() -> None:
    task = TASKS["countdown"]
    rows = task.build_rows(Split("train", 20, 3))
    completions = [task.reference_completion(r) for r in rows]
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    for fn in task.reward_funcs:
        assert fn(completions, **columns) == [1.0] * len(rows)
