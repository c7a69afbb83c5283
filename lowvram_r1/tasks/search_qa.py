"""Search-QA: open questions answered with an F1 reward against the gold answers (ReSearch / Search-R1 style,
single turn for now: no retrieval tool calls yet).

Rows: ``question``, ``golden_answers: list[str]``. Sources: ``--data-path`` (``answers``/``answer`` columns are
accepted too) or the hub (FlashRAG's NQ by default). Rewards: answer F1 (1.0) and a format penalty (-1 when the
think/answer tags are missing, weight 0.5).
"""

from __future__ import annotations

from typing import Any

from lowvram_r1.rewards.f1 import answer_f1, exact_match
from lowvram_r1.rewards.format import soft_format_reward
from lowvram_r1.rewards.parsing import completion_text, extract_answer
from lowvram_r1.tasks.base import Split, Task, TaskDataError, local_split, read_hub_rows, take

SYSTEM_PROMPT = (
    "Answer the question. Reason inside <think> </think> tags, then give a short answer (a few words) inside "
    "<answer> </answer> tags."
)


def _row(raw: dict[str, Any]) -> dict[str, Any]:
    golds = raw.get("golden_answers", raw.get("answers", raw.get("answer")))
    if golds is None or "question" not in raw:
        raise TaskDataError("search_qa rows need question and golden_answers (or answers / answer)")
    golds = [golds] if isinstance(golds, str) else [str(g) for g in golds]
    return {"question": str(raw["question"]), "golden_answers": golds}


def rows(split: Split) -> list[dict[str, Any]]:
    options = split.options
    if split.data_path:
        source = local_split(split)
    else:
        source = read_hub_rows(options["hub_id"], options["hub_config"], "test" if split.split == "test" else "train")
    return take([_row(r) for r in source], split.size)


def check(completion: Any, row: dict) -> bool:
    return exact_match(extract_answer(completion_text(completion)), row["golden_answers"])


def answer_f1_reward(completions: list[Any], golden_answers: list[list[str]], **kwargs: Any) -> list[float]:
    """Best token F1 of the ``<answer>`` against the gold answers (0.0 without an answer)."""
    return [answer_f1(extract_answer(completion_text(c)), g) for c, g in zip(completions, golden_answers, strict=True)]


def format_penalty_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """0.0 with think/answer tags in order, -1.0 without."""
    return [score - 1.0 for score in soft_format_reward(completions, **kwargs)]


TASK = Task(
    name="search_qa",
    description="Open-domain QA scored by answer F1 (hub FlashRAG NQ or a local file); single turn.",
    system_prompt=SYSTEM_PROMPT,
    reward_funcs=[answer_f1_reward, format_penalty_reward],
    reward_weights=[1.0, 0.5],
    check=check,
    rows=rows,
    answer_columns=("question", "golden_answers"),
    default_options={"hub_id": "RUC-NLPIR/FlashRAG_datasets", "hub_config": "nq", "test_size": 200},
)
