"""GSM-Symbolic: reasoning-gym's templated grade-school word problems, the offline stand-in for GSM8K.

Same rows (``question``, ``answer`` = the number) and the same reward bundle as ``gsm8k``, so a recipe tried
offline here carries over to GSM8K unchanged.
"""

from __future__ import annotations

from typing import Any

import lowvram_r1.tasks.gsm8k as gsm8k
from lowvram_r1.tasks.base import Split, Task
from lowvram_r1.tasks.rg import reference_completion, rg_rows


def rows(split: Split) -> list[dict[str, Any]]:
    generated = rg_rows("gsm_symbolic", split, split.options["train_size"], {})
    return [{**row, "answer": gsm8k.gold_number(row["answer"])} for row in generated]


TASK = Task(
    name="gsm_symbolic",
    description="GSM-Symbolic word problems (reasoning-gym generator, offline); GSM8K's reward bundle.",
    system_prompt=gsm8k.SYSTEM_PROMPT,
    reward_funcs=gsm8k.TASK.reward_funcs,
    reward_weights=gsm8k.TASK.reward_weights,
    check=gsm8k.check,
    rows=rows,
    answer_columns=("question", "answer"),
    reference_completion=reference_completion,
    default_options={"train_size": 2000, "test_size": 200},
)
