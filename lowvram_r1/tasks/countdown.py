"""Countdown: reach a target with the given numbers, each used once, and ``+ - * /`` (TinyZero's R1-Zero task).

Rows: ``nums: list[int]``, ``target: int`` (plus ``solution`` for procedurally made rows). Sources, in order:
``--data-path`` file, the hub dataset (``source: hub``), or the seeded procedural generator (default, offline).

    lowvram-r1 score --task countdown --row '{"nums":[19,36,55,7],"target":65}' \
        --completion '<think>55+19=74, 74-7=67... 36-7=29, 55-19=36</think><answer>55 + 36 - 19 - 7</answer>'
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from lowvram_r1.rewards.arithmetic import evaluate, numbers_in
from lowvram_r1.rewards.checked import check_reward, remembered
from lowvram_r1.rewards.format import soft_format_reward
from lowvram_r1.rewards.parsing import completion_text, extract_answer
from lowvram_r1.tasks.base import Split, Task, local_split, read_hub_rows, take
from lowvram_r1.tasks.option_checks import check_generated

HUB_ID = "Jiayi-Pan/Countdown-Tasks-3to4"
SYSTEM_PROMPT = (
    "You are a helpful assistant. You first think about the reasoning process in the mind "
    "and then provide the user with the answer."
)


def question(row: dict, options: dict) -> str:
    # "compact" is a short prompt for the built-in tiny model: fewer tokens, faster CPU steps.
    if options.get("question_style") == "compact":
        return f"Use {list(row['nums'])} once each with + - * / to make {row['target']}."
    return (
        f"Using the numbers {list(row['nums'])}, create an equation that equals {row['target']}. "
        "You can use basic arithmetic operations (+, -, *, /) and each number can only be used once. "
        "Show your work in <think> </think> tags. And return the final answer in <answer> </answer> tags, "
        "for example <answer> (1 + 2) / 3 </answer>."
    )


@remembered
def check(completion: Any, row: dict) -> bool:
    """True when the answer is an equation that uses every given number exactly once and equals the target."""
    answer = extract_answer(completion_text(completion))
    if answer is None:
        return False
    try:
        nums, target = [int(n) for n in row["nums"]], int(row["target"])
    except (KeyError, TypeError, ValueError):
        return False
    if Counter(numbers_in(answer)) != Counter(nums):
        return False
    value = evaluate(answer)
    return value is not None and value == target


# 1.0 when the ``<answer>`` equation uses each number once and reaches the target, else 0.0
equation_reward = check_reward(check, "equation_reward")


def generate_puzzle(
    rng: random.Random, count: int, max_number: int, max_target: int, shuffle: bool = True
) -> dict[str, Any] | None:
    """One puzzle with a recorded solution: numbers folded left to right with random operators.

    With ``shuffle`` the numbers are listed in an order unrelated to the solution; without it, in the order the
    solution uses them (an easier variant). Returns ``None`` when this draw gives a non-positive or too large
    target (the caller redraws).
    """
    order = [rng.randint(1, max_number) for _ in range(count)]
    nums = rng.sample(order, len(order)) if shuffle else list(order)
    expression, value, steps = str(order[0]), order[0], []
    for number in order[1:]:
        op = rng.choice("+-*/")
        if op == "/" and (number == 0 or value % number):
            op = "+"
        result = {"+": value + number, "-": value - number, "*": value * number, "/": value // number}[op]
        steps.append(f"{value} {op} {number} = {result}")
        expression = f"({expression}) {op} {number}" if op in "*/" and len(steps) > 1 else f"{expression} {op} {number}"
        value = result
    if not 0 < value <= max_target:
        return None
    return {"nums": nums, "target": value, "solution": expression, "steps": steps}


def generate_puzzles(seed: int, test_size: int, train_size: int, options: dict[str, Any]) -> tuple[list, list]:
    """(test, train) puzzles, deterministic for ``seed``: test puzzles are distinct, and none appears in train.

    Train puzzles may repeat when the options allow few distinct puzzles (small numbers): that is fine for RL.
    """
    rng = random.Random(seed)
    test, train, test_keys = [], [], set()
    low, high = options["min_numbers"], options["max_numbers"]
    attempts, budget = 0, 200 * (test_size + train_size) + 10_000
    while len(test) < test_size or len(train) < train_size:
        attempts += 1
        if attempts > budget:
            raise ValueError(
                f"countdown options {dict(options)} allow too few distinct puzzles for "
                f"{test_size} test rows: lower test_size or raise max_number"
            )
        puzzle = generate_puzzle(
            rng, rng.randint(low, high), options["max_number"], options["max_target"], options["shuffle_numbers"]
        )
        if puzzle is None:
            continue
        key = (tuple(sorted(puzzle["nums"])), puzzle["target"])
        if len(test) < test_size and key not in test_keys:
            test_keys.add(key)
            test.append(puzzle)
        elif key not in test_keys and len(train) < train_size:
            train.append(puzzle)
    return test, train


def check_options(options: dict[str, Any]) -> None:
    """The generator's options make puzzles (checked before generating): ``ValueError`` naming the option."""
    low, high = options["min_numbers"], options["max_numbers"]
    checks = [
        (1 <= low <= high <= 8, f"1 <= min_numbers <= max_numbers <= 8, got {low} and {high}"),
        (1 <= options["max_number"] <= 1_000_000, f"max_number must be 1..1000000, got {options['max_number']}"),
        (1 <= options["max_target"] <= 10**12, f"max_target must be 1..10**12, got {options['max_target']}"),
    ]
    for name in ("train_size", "test_size"):
        check_generated("countdown", options[name], name)
    for ok, message in checks:
        if not ok:
            raise ValueError(f"task countdown: {message}")


def rows(split: Split) -> list[dict[str, Any]]:
    options = split.options
    if split.data_path:
        return take(local_split(split), split.size)
    if options["source"] == "hub":  # the hub dataset has one split: hold out its first test_size rows
        source = read_hub_rows(HUB_ID, None, "train")
        held_out = options["test_size"]
        return take(source[:held_out] if split.split == "test" else source[held_out:], split.size)
    # One stream makes both splits, so train never holds a test puzzle.
    train_size = split.size if split.split == "train" and split.size else options["train_size"]
    check_options(options)
    check_generated("countdown", train_size, "--train-size")
    test, train = generate_puzzles(split.seed, options["test_size"], train_size, options)
    return take(test if split.split == "test" else train, split.size)


def reference_completion(row: dict) -> str:
    """A correct completion for a procedurally made row: the recorded steps, then the equation."""
    steps = "\n".join(row["steps"])
    return f"<think>\n{steps}\n</think>\n<answer>\n{row['solution']}\n</answer>"


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 for a ``<think>`` block followed by an ``<answer>`` block (TinyZero's format score)."""
    return soft_format_reward(completions, **kwargs)


TASK = Task(
    name="countdown",
    description="Countdown numbers game: combine the numbers with + - * / to hit the target (offline generator).",
    system_prompt=SYSTEM_PROMPT,
    reward_funcs=[format_reward, equation_reward],
    reward_weights=[0.1, 1.0],
    check=check,
    rows=rows,
    question=question,
    answer_columns=("nums", "target"),
    reference_completion=reference_completion,
    default_options={
        "source": "procedural",  # or "hub" for Jiayi-Pan/Countdown-Tasks-3to4
        "question_style": "full",  # or "compact": a one-line question (the tiny CPU demo uses it)
        "shuffle_numbers": True,  # False lists numbers in the order a solution uses them (easier; tiny demo)
        "min_numbers": 3,
        "max_numbers": 4,
        "max_number": 99,
        "max_target": 1000,
        "train_size": 20_000,
        "test_size": 200,
    },
    # the cpu-demo recipe's variant: three one-digit numbers in solution order, a one-line question
    tiny_options={
        "question_style": "compact",
        "min_numbers": 3,
        "max_numbers": 3,
        "max_number": 9,
        "max_target": 100,
        "shuffle_numbers": False,
        "test_size": 200,
    },
    # 3 epochs of cold-start SFT (750 steps): 2 left the fp32 cold start's pass@1 at 4-15% across seeds 0-2, too
    # little for GRPO to sharpen in the demo's minutes; 3 give 15-26% (docs/demo.md, "The cold start")
    tiny_sizes={"sft_epochs": 3.0},
)
