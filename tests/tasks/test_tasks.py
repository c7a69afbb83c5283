"""Every task: the gold answer in the expected format gets full marks, garbage gets nothing and never raises,
a right answer in the wrong format scores below the maximum. Plus literal tables per reward."""

from __future__ import annotations

import pytest

from lowvram_r1.tasks import TASKS, Split, get_task
from lowvram_r1.tasks.gsm8k import normalize_number
from lowvram_r1.tasks.logic import person_credit
from lowvram_r1.tasks.math import math_correctness_reward

LITERAL_ROWS = {  # tasks whose data comes from the hub or a file: one literal row each
    "gsm8k": {"question": "Tom has 3 apples and buys 39. How many?", "answer": "42"},
    "math": {"question": "What is 1/2 + 0?", "answer": "\\frac{1}{2}"},
    "search_qa": {"question": "Capital of France?", "golden_answers": ["Paris", "Paris, France"]},
    "dataset": {"question": "Capital of France?", "answer": "Paris", "checker": "exact"},  # the generic task
}
GOLD_ANSWERS = {"gsm8k": "42", "math": "\\boxed{\\frac{1}{2}}", "search_qa": "Paris", "dataset": "Paris"}
TASK_NAMES = [*sorted(TASKS), "rg:basic_arithmetic"]


def sample(name: str) -> tuple[dict, str, str]:
    """(row, gold completion in the expected format, the bare gold answer)."""
    task = get_task(name)
    if name in LITERAL_ROWS:
        row = LITERAL_ROWS[name]
        answer = GOLD_ANSWERS[name]
        return row, f"<think>\nworking\n</think>\n<answer>\n{answer}\n</answer>\n", answer
    rows = task.build_rows(Split("train", 20, 7, None, {}))
    # GSM-style bundles reward integer answers; take a row whose gold answer is one
    row = next((r for r in rows if "." not in str(r.get("answer", ""))), rows[0])
    gold = task.reference_completion(row)
    return row, gold, gold.split("<answer>")[1].split("</answer>")[0].strip()


def rewards(name: str, row: dict, completion: str) -> list[float | None]:
    task = get_task(name)
    columns = {key: [value] for key, value in row.items()}
    return [fn([completion], **columns)[0] for fn in task.reward_funcs]


def best(fn_name: str) -> float:
    return 0.0 if "penalty" in fn_name else 1.0


STAGED = {"r1_searcher"}  # rewards of the other training stage return None (not applicable), by design


@pytest.mark.parametrize("name", TASK_NAMES)
def test_gold_gets_full_marks(name: str) -> None:
    row, gold, _ = sample(name)
    task = get_task(name)
    # optimised rewards only (weight 0 = a monitor, e.g. searches per completion); None = not applicable to this row
    # (r1_searcher's other-stage terms), but some reward must grade it
    graded = [
        (n, v)
        for n, v, w in zip(task.reward_names, rewards(name, row, gold), task.reward_weights, strict=True)
        if w and (v is not None or name not in STAGED)
    ]
    assert graded and graded == [(n, best(n)) for n, _ in graded]
    assert task.check(gold, row)
    assert task.check([{"role": "assistant", "content": gold}], row)  # conversational form too


@pytest.mark.parametrize("name", TASK_NAMES)
@pytest.mark.parametrize("garbage", ["", "   ", "lorem ipsum", "\x00\uffff", "} { ) ( ] [", "%s" * 50])
def test_garbage_gets_nothing(name: str, garbage: str) -> None:
    row, _, _ = sample(name)
    task = get_task(name)
    for fn_name, value in zip(task.reward_names, rewards(name, row, garbage), strict=True):
        assert (value is None and name in STAGED) or value == (-1.0 if "penalty" in fn_name else 0.0), (fn_name, value)
    assert not task.check(garbage, row)


@pytest.mark.parametrize("name", TASK_NAMES)
@pytest.mark.parametrize("fragment", ["<answer></answer>", "<think><answer>", "</answer></answer>", "<answer>"])
def test_tag_fragments_never_exceed_the_maximum(name: str, fragment: str) -> None:
    row, _, _ = sample(name)
    task = get_task(name)
    for fn_name, value in zip(task.reward_names, rewards(name, row, fragment), strict=True):
        assert value is None or value <= best(fn_name)
    assert not task.check(fragment, row)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_right_answer_wrong_format_scores_below_max(name: str) -> None:
    row, _, answer = sample(name)
    task = get_task(name)
    values = rewards(name, row, f"The answer is <answer>{answer}</answer>")  # no think block
    total = sum(w * (v or 0.0) for w, v in zip(task.reward_weights, values, strict=True))
    maximum = sum(w * best(n) for w, n in zip(task.reward_weights, task.reward_names, strict=True))
    assert total < maximum


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234", "1234"),  # thousands separator
        ("$18", "18"),  # currency
        ("18.0", "18"),  # trailing .0
        ("18.50", "18.5"),
        ("18 dollars", "18"),  # a simple unit
        ("-7", "-7"),
        ("eighteen", None),  # words are not numbers
        ("1e400", None),
    ],
)
def test_gsm8k_number_normalisation(text: str, expected: str | None) -> None:
    assert normalize_number(text) == expected


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        ("<answer>\\boxed{0.5}</answer>", "\\frac{1}{2}", 1.0),  # equivalent forms
        ("<answer>\\boxed{x(x+2)}</answer>", "x^2+2x", 1.0),
        ("<answer>\\boxed{3}</answer>", "4", 0.0),
        ("no answer here", "4", 0.0),
        ("<answer>\\boxed{3}</answer>", "\\frac{", None),  # unparseable gold: skipped, not failed
    ],
)
def test_math_correctness(completion: str, gold: str, expected: float | None) -> None:
    assert math_correctness_reward([completion], answer=[gold]) == [expected]


@pytest.mark.parametrize(
    ("answer", "credit"),
    [
        ("Riley is an altruist, and Daniel is an egoist.", 1.0),
        ("Riley is an altruist, and Daniel is an altruist.", 0.5),  # one of two people right
        ("Daniel is an egoist", 0.5),  # one person missing
        ("Riley is an egoist, and Daniel is an altruist.", 0.0),
    ],
)
def test_logic_partial_credit(answer: str, credit: float) -> None:
    gold = "Riley is an altruist, and Daniel is an egoist."
    assert person_credit(f"<think>x</think><answer>{answer}</answer>", gold) == credit


def test_unknown_rg_dataset_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="reasoning-gym has no dataset 'nope'"):
        get_task("rg:nope")


def test_format_rewards_read_the_assistant_prefill() -> None:
    from lowvram_r1.rewards.format import soft_format_reward, strict_format_reward
    from lowvram_r1.tasks.base import PromptFormat

    task = get_task("countdown")
    row = {"nums": [1, 2, 3], "target": 6}
    prompt = task.prompt(row, PromptFormat(prefill="Let me solve this step by step.\n<think>"))
    assert prompt[-1] == {"role": "assistant", "content": "Let me solve this step by step.\n<think>"}
    completion = "1 + 2 = 3, 3 + 3 = 6</think><answer>1 + 2 + 3</answer>"  # the model continues after <think>
    assert soft_format_reward([completion], prompts=[prompt]) == [1.0]
    assert soft_format_reward([completion]) == [0.0]  # without the prefill the think block is unopened
    plain = task.prompt(row, PromptFormat(style="plain", prefill="<think>\n"))
    assert strict_format_reward(["1 + 2 + 3 = 6\n</think>\n<answer>\n1 + 2 + 3\n</answer>"], prompts=[plain]) == [1.0]
    assert task.check(completion, row)
