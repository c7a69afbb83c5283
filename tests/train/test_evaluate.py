"""Held-out scoring: pass@1 over samples, pass@k, format rate — on literal completions."""

from __future__ import annotations

import pytest

from lowvram_r1.tasks import TASKS
from lowvram_r1.train.evaluate import score

ROWS = [{"nums": [1, 2, 3], "target": 6}, {"nums": [2, 2, 5], "target": 9}]
RIGHT_1 = "<think>1 + 2 = 3, 3 + 3 = 6</think><answer>1 + 2 + 3</answer>"
WRONG_1 = "<think>1 * 2 = 2</think><answer>1 * 2 * 3 + 1</answer>"
RIGHT_2 = "<think>2 + 2 = 4, 4 + 5 = 9</think><answer>2 + 2 + 5</answer>"


def test_greedy_accuracy_and_format_rate() -> None:
    result = score(TASKS["countdown"], ROWS, [RIGHT_1, "no tags at all"])
    assert result["accuracy"] == 0.5  # one of two rows right
    assert result["format_rate"] == 0.5  # the second has no <answer>
    assert "pass@1" not in result


def test_samples_give_mean_accuracy_and_pass_at_k() -> None:
    # row 1: one right of three samples; row 2: none right
    completions = [RIGHT_1, WRONG_1, WRONG_1, WRONG_1, WRONG_1, WRONG_1]
    result = score(TASKS["countdown"], ROWS, completions, samples=3)
    assert result["accuracy"] == 1 / 6
    assert result["pass@3"] == 0.5
    result = score(TASKS["countdown"], ROWS, [RIGHT_1, WRONG_1, WRONG_1, RIGHT_2, RIGHT_2, RIGHT_2], samples=3)
    assert result["accuracy"] == 4 / 6 and result["pass@3"] == 1.0


def test_pass_at_k_unbiased_estimator_and_majority_vote() -> None:
    from lowvram_r1.train.evaluate import pass_at_k

    assert pass_at_k(4, 0, 2) == 0.0
    assert pass_at_k(4, 1, 1) == 0.25
    assert pass_at_k(4, 1, 2) == 0.5  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 3, 2) == 1.0  # any 2 of 4 include a right one
    # row 1: majority (2 of 4) says "1 + 2 + 3", right; row 2: majority wrong
    wrong_2 = "<answer>2 * 2 * 5</answer>"
    completions = [RIGHT_1, RIGHT_1, WRONG_1, "x", wrong_2, wrong_2, RIGHT_2, "y"]
    result = score(TASKS["countdown"], ROWS, completions, samples=4)
    assert result["maj@4"] == 0.5
    # pass@2: row 1 has 2 of 4 right (1 - C(2,2)/C(4,2) = 5/6), row 2 has 1 of 4 (1/2)
    assert result["pass@4"] == 1.0 and result["pass@2"] == pytest.approx((5 / 6 + 1 / 2) / 2)
