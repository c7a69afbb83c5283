"""GSM8K grade-school maths, with the reward bundle of the well-known single-GPU GRPO recipe.

Rows: ``question: str``, ``answer: str`` (the gold number only). Sources: ``--data-path`` (jsonl/parquet with
question/answer; a GSM8K-style answer with ``#### 42`` is reduced to the number) or the hub (``openai/gsm8k``).
Rewards: correctness 2.0, integer answer 0.5, strict format 0.5, soft format 0.5, tag count up to 0.5.
"""

from __future__ import annotations

import re
from typing import Any

from lowvram_r1.rewards.checked import check_reward, remembered
from lowvram_r1.rewards.format import soft_format_reward, strict_format_reward, tag_count_reward
from lowvram_r1.rewards.parsing import completion_text, extract_answer
from lowvram_r1.tasks.base import Split, Task, local_split, read_hub_rows, take

HUB_ID, HUB_CONFIG = "openai/gsm8k", "main"
SYSTEM_PROMPT = (
    "Respond in the following format:\n<think>\n...\n</think>\n<answer>\n...\n</answer>\n"
    "Put only the final number in the answer."
)
# One number: optional sign, digits with optional decimals, or a leading-dot decimal (".4" is 0.4).
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_CURRENCY = re.compile(r"\\?[$€£¥]|\\%|\\[!,;]")  # currency signs (escaped or not), LaTeX spacing


def normalize_number(text: Any) -> str | None:
    """Canonical form of a numeric answer: ``"$1,234.50"`` → ``"1234.5"``, ``"7.0"`` → ``"7"``, ``".4"`` → ``"0.4"``.

    The answer must hold exactly one number; units are ignored, whatever they are: any words or unit symbols
    around it (``"5 m²"``, ``"12 apples"``, ``"40%"``, ``"\\$18.90"``) are dropped. Thousands separators count
    only in groups of three (``"1,234"``); ``"5 + 3"`` or ``"2 hours 30 minutes"`` hold two numbers: ``None``.
    """
    if not isinstance(text, str | int | float) or isinstance(text, bool):
        return None
    cleaned = _CURRENCY.sub("", str(text)[:200])
    cleaned = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", cleaned)  # 1,234,567 -> 1234567
    numbers = _NUMBER.findall(cleaned)
    if len(numbers) != 1:
        return None
    number = numbers[0].lstrip("+")
    sign, digits = ("-", number[1:]) if number.startswith("-") else ("", number)
    if digits.startswith("."):
        digits = "0" + digits
    if "." in digits:
        digits = digits.rstrip("0").rstrip(".")
    digits = digits.lstrip("0") or "0"
    if digits.startswith("."):
        digits = "0" + digits
    return f"{sign}{digits}" if digits != "0" else "0"


def gold_number(answer: str) -> str:
    """GSM8K's gold field ``"...reasoning...\\n#### 1,234"`` → ``"1234"``; a bare number passes through."""
    tail = str(answer).split("####")[-1]
    return normalize_number(tail.strip()) or tail.strip()


@remembered
def check(completion: Any, row: dict) -> bool:
    """True when the final ``<answer>`` (after the reasoning) holds the gold number: see :func:`normalize_number`
    for what counts as the same number (commas, currency, any unit words, ``.0`` and leading dots ignored)."""
    answer = extract_answer(completion_text(completion))
    return answer is not None and normalize_number(answer) == normalize_number(row.get("answer"))


# 1.0 when the extracted answer equals the gold number, else 0.0 (weighted 2.0 in the bundle)
correctness_reward = check_reward(check, "correctness_reward")


def integer_answer_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 when the ``<answer>`` is a bare integer: teaches "a number, nothing else" early."""
    answers = [extract_answer(completion_text(c)) for c in completions]
    return [1.0 if a is not None and re.fullmatch(r"-?\d+", a) else 0.0 for a in answers]


def rows(split: Split) -> list[dict[str, Any]]:
    if split.data_path:
        source = local_split(split)
    else:
        source = read_hub_rows(HUB_ID, HUB_CONFIG, split.split)
    return take([{**r, "answer": gold_number(r["answer"])} if "answer" in r else r for r in source], split.size)


TASK = Task(
    name="gsm8k",
    description="GSM8K grade-school maths word problems (hub openai/gsm8k or a local jsonl/parquet).",
    system_prompt=SYSTEM_PROMPT,
    reward_funcs=[
        correctness_reward,
        integer_answer_reward,
        strict_format_reward,
        soft_format_reward,
        tag_count_reward,
    ],
    reward_weights=[2.0, 0.5, 0.5, 0.5, 0.5],
    check=check,
    rows=rows,
    answer_columns=("question", "answer"),
    default_options={"test_size": 200},
)
