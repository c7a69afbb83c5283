"""Answer checking that agrees with the field: a table of cases in the spirit of other projects' own tests.

The cases are ours, written after reading what math-verify's, TRL's and open-r1's reward tests, reasoning-gym's
Countdown tests and the FlashRAG / Search-R1 exact-match rule check (no code copied). Each row says what a careful
grader answers; grouped by the classes where our ``check`` used to disagree: escaped currency, leading-dot
decimals, ungradable golds, partial parses, where the answer may stand, and units.
"""

from __future__ import annotations

import pytest

from lowvram_r1.rewards import math as math_rewards
from lowvram_r1.tasks import get_task
from lowvram_r1.train.evaluate import score


def think(answer: str, reasoning: str = "work") -> str:
    return f"<think>{reasoning}</think>\n<answer>{answer}</answer>"


def boxed(answer: str) -> str:
    return f"<think>work</think>\nSo the answer is $\\boxed{{{answer}}}$."


# (completion, gold, correct?)
MATH_CASES = [
    # agreement on the basics
    (boxed("\\frac{1}{2}"), "0.5", True),
    (boxed("0.5"), "\\frac{1}{2}", True),
    (boxed("x(x+2)"), "x^2+2x", True),
    (boxed("3"), "3", True),
    (boxed("4"), "3", False),
    (boxed("\\sqrt{2}/2"), "\\frac{\\sqrt{2}}{2}", True),
    (boxed("2\\pi"), "2 \\pi", True),
    (boxed("\\dfrac{3}{4}"), "\\frac34", True),
    (boxed("(1, 2]"), "(1,2]", True),
    (boxed("\\{1, 2\\}"), "\\{2, 1\\}", True),
    (think("7"), "7", True),  # no box: the <answer> block
    # escaped currency: only an unescaped $ delimits math
    (boxed("\\$16,\\!386.20"), "16386.20", True),
    (boxed("18.90"), "\\$18.90", True),
    (boxed("\\$18.90"), "\\$18.90", True),
    (boxed("18.00"), "\\$18.90", False),
    # leading-dot decimals
    (boxed(".4"), "0.4", True),
    (boxed("0.4"), ".4", True),
    # partial parses: \mathrm{e} used to end extraction, leaving "1" on both sides
    (boxed("1 - \\frac{1}{\\mathrm{e}}"), "1 + \\frac{1}{\\mathrm{e}}", False),
    (boxed("1 - \\frac{1}{e}"), "1 - \\frac{1}{\\mathrm{e}}", True),
    (boxed("1 - \\frac{1}{\\mathrm{e}}"), "1-e^{-1}", True),
    # where the answer stands: after the reasoning, never a draft inside <think>
    ("<think>maybe \\boxed{5}</think> I could not finish.", "5", False),
    ("<think>first guess \\boxed{4}</think> Final: \\boxed{5}", "5", True),
    ("<think>still thinking \\boxed{5}", "5", False),  # reasoning never closed: no final answer
    ("\\boxed{5}", "5", True),  # no reasoning block at all: the whole text is the answer
]

GSM8K_CASES = [
    (think("42"), "42", True),
    (think("41"), "42", False),
    (think("$1,234.50"), "1234.5", True),
    (think("\\$18.90"), "18.9", True),  # escaped currency
    (think(".4"), "0.4", True),  # leading-dot decimal
    (think("0.40"), ".4", True),
    (think("7.0"), "7", True),
    (think("-3"), "-3", True),
    # units are ignored, whatever they are
    (think("5 m"), "5", True),
    (think("5 m²"), "5", True),
    (think("5 meters"), "5", True),
    (think("12 apples"), "12", True),
    (think("40%"), "40", True),
    (think("5 dollars"), "5", True),
    # but one number only
    (think("5 + 3"), "8", False),
    (think("2 hours 30 minutes"), "150", False),
    (think("1,23"), "123", False),  # not a thousands separator
    # where the answer stands
    ("<think><answer>42</answer></think> no idea", "42", False),
    ("<think>draft <answer>41</answer></think>\n<answer>42</answer>", "42", True),
]

COUNTDOWN_CASES = [
    ({"nums": [19, 36, 55, 7], "target": 65}, think("55 + 36 - 19 - 7"), True),
    ({"nums": [19, 36, 55, 7], "target": 65}, think("55 + 36 - 19"), False),  # a number unused
    ({"nums": [3, 5, 2], "target": 4}, think("(3 + 5) / 2"), True),
    ({"nums": [3, 5, 2], "target": 4}, think("3 + 5 / 2"), False),  # precedence
    ({"nums": [3, 5, 2], "target": 16}, think("(3 + 5) * 2 = 16"), True),  # "= target" written after
    ({"nums": [3, 5, 2], "target": 4}, "<think><answer>(3 + 5) / 2</answer></think>", False),  # inside <think>
]


@pytest.mark.parametrize(("completion", "gold", "correct"), MATH_CASES)
def test_math_check_agrees(completion: str, gold: str, correct: bool) -> None:
    assert get_task("math").check(completion, {"answer": gold}) is correct


@pytest.mark.parametrize(("completion", "gold", "correct"), GSM8K_CASES)
def test_gsm8k_check_agrees(completion: str, gold: str, correct: bool) -> None:
    assert get_task("gsm8k").check(completion, {"answer": gold}) is correct


@pytest.mark.parametrize(("row", "completion", "correct"), COUNTDOWN_CASES)
def test_countdown_check_agrees(row: dict, completion: str, correct: bool) -> None:
    assert get_task("countdown").check(completion, row) is correct


UNGRADABLE = "k \\geq \\frac{1}{2}\\pm"  # math-verify can keep it only as a raw string


def test_an_ungradable_gold_is_reported_not_failed() -> None:
    assert math_rewards.parse_gold(UNGRADABLE) is None
    task = get_task("math")
    same, other = boxed("k \\geq \\frac{1}{2} \\pm"), boxed("k = 3")
    assert task.check(same, {"answer": UNGRADABLE}) is True  # word for word the gold: correct
    assert task.check(other, {"answer": UNGRADABLE}) is False
    reward = task.reward_funcs[1]
    assert reward([same, other], answer=[UNGRADABLE, UNGRADABLE]) == [1.0, None]  # None: TRL skips, not a 0
    rows = [{"answer": UNGRADABLE}, {"answer": "3"}, {"answer": "5"}]
    result = score(task, rows, [other, boxed("3"), boxed("4")])
    assert result["ungradable"] == 1.0 and result["n"] == 2.0
    assert result["accuracy"] == 0.5  # of the two gradable rows, not 1 of 3


def test_the_gold_is_parsed_once_per_row_and_every_call_is_time_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import math_verify

    parses, verifies = [], []
    real_parse, real_verify = math_verify.parse, math_verify.verify

    def parse(text: str, **kwargs: object) -> list:
        parses.append(kwargs.get("parsing_timeout"))
        return real_parse(text, **kwargs)

    def verify(gold: object, answer: object, **kwargs: object) -> bool:
        verifies.append(kwargs.get("timeout_seconds"))
        return real_verify(gold, answer, **kwargs)

    monkeypatch.setattr(math_verify, "parse", parse)
    monkeypatch.setattr(math_verify, "verify", verify)
    gold = "\\frac{17}{19} + \\sqrt{23}"  # a gold no other test parses (the cache is per process)
    for guess in range(5):
        get_task("math").check(boxed(str(guess)), {"answer": gold})
    assert len(parses) == 1 + 5  # the gold once, each answer once
    assert all(t is not None and t <= 1 for t in parses + verifies) and len(verifies) == 5
