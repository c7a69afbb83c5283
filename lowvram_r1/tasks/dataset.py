"""The generic dataset task: any local file or hub dataset, no Python to write.

A recipe names the columns, the prompt and the checker; the answer format (``<think>…</think><answer>…</answer>``)
and the format rewards are the presets' own:

    task:
      name: dataset
      data_path: ./capitals.jsonl            # or options.hub_id: owner/name (needs the network)
      options:
        question: q                          # the column the question is in (or a template below)
        answer: capital                      # the column the gold answer is in
        template: "What is the capital of {country}? Answer with the city only."   # over the row's columns
        checker: exact                       # number | math | exact | f1

Checkers: ``number`` (one number, GSM8K's normalisation), ``math`` (math-verify), ``exact`` (equal after SQuAD's
normalisation), ``f1`` (token F1; the check counts F1 = 1). Rewards: correctness 2.0 (the checker's score),
strict format 0.5, soft format 0.5, tag count 0.5.
"""

from __future__ import annotations

import string
from typing import Any

from lowvram_r1.rewards.checked import batch_rows, remembered
from lowvram_r1.rewards.f1 import answer_f1, exact_match
from lowvram_r1.rewards.format import soft_format_reward, strict_format_reward, tag_count_reward
from lowvram_r1.rewards.parsing import completion_text, extract_answer
from lowvram_r1.tasks.base import Split, Task, TaskDataError, local_split, read_hub_rows, take

CHECKERS = ("number", "math", "exact", "f1")
CHECKER_COLUMN = "checker"  # each row carries the checker its recipe chose: rewards see columns, not options
SYSTEM_PROMPT = (
    "Respond in the following format:\n<think>\n...\n</think>\n<answer>\n...\n</answer>\n"
    "Put only the final answer in the answer."
)
DEFAULTS: dict[str, Any] = {
    "question": "question",
    "answer": "answer",
    "template": "",
    "checker": "exact",
    "hub_id": "",
    "hub_config": None,
    "test_size": 200,
}


def _check_options(options: dict[str, Any]) -> None:
    if options["checker"] not in CHECKERS:
        raise ValueError(
            f"task dataset: option checker must be one of {', '.join(CHECKERS)}; got {options['checker']!r}"
        )
    if options["template"]:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(options["template"]) if f is not None]
        except ValueError as error:
            raise ValueError(f"task dataset: option template is not a format string ({error})") from None
        if any(not f.isidentifier() for f in fields):
            raise ValueError("task dataset: option template names columns in braces, e.g. 'Solve: {problem}'")


def question(row: dict, options: dict[str, Any]) -> str:
    """The template filled with the row's columns, or the question column as it is."""
    return options["template"].format_map(row) if options["template"] else str(row[options["question"]])


def rows(split: Split) -> list[dict[str, Any]]:
    options = dict(split.options)
    _check_options(options)
    if split.data_path:
        source = local_split(split)
    elif options["hub_id"]:
        source = read_hub_rows(options["hub_id"], options["hub_config"], split.split)
    else:
        raise TaskDataError("task dataset needs its rows: pass --data-path FILE, or set task.options.hub_id")
    if not source:
        return []
    needed = [options["answer"]] + ([] if options["template"] else [options["question"]])
    if options["template"]:
        needed += [f for _, f, _, _ in string.Formatter().parse(options["template"]) if f]
    missing = sorted({c for c in needed if c not in source[0]})
    if missing:
        raise TaskDataError(
            f"task dataset: the rows lack column(s) {', '.join(missing)} (found: {', '.join(sorted(source[0]))}); "
            "set task.options question / answer / template to the file's column names"
        )
    out = [
        {**r, "question": question(r, options), "answer": str(r[options["answer"]]), CHECKER_COLUMN: options["checker"]}
        for r in source
    ]
    return take(out, split.size)


def score(completion: Any, row: dict) -> float:
    """The checker's score (0 to 1) of the completion's final ``<answer>`` against the row's gold answer."""
    answer = extract_answer(completion_text(completion))
    if answer is None:
        return 0.0
    gold, checker = str(row.get("answer", "")), row.get(CHECKER_COLUMN, "exact")
    if checker == "number":
        from lowvram_r1.tasks.gsm8k import normalize_number

        return float(normalize_number(answer) is not None and normalize_number(answer) == normalize_number(gold))
    if checker == "math":
        from lowvram_r1.rewards.math import is_equivalent

        return float(is_equivalent(answer, gold) is True)
    if checker == "f1":
        return answer_f1(answer, gold)
    return float(exact_match(answer, gold))


@remembered
def check(completion: Any, row: dict) -> bool:
    return score(completion, row) == 1.0


def correctness_reward(completions: list[Any], **columns: Any) -> list[float]:
    """The checker's score of each completion's answer (1.0 / 0.0; F1 in between for ``checker: f1``)."""
    return [score(c, row) for c, row in zip(completions, batch_rows(completions, columns), strict=True)]


def reference_completion(row: dict) -> str:
    """A completion in the task's format with the gold answer (what the tiny model's cold start learns)."""
    return f"<think>\nThe answer is {row['answer']}.\n</think>\n<answer>\n{row['answer']}\n</answer>"


TASK = Task(
    name="dataset",
    description="Your own dataset, no Python: a local file or hub dataset, columns and checker in task.options.",
    system_prompt=SYSTEM_PROMPT,
    reward_funcs=[correctness_reward, strict_format_reward, soft_format_reward, tag_count_reward],
    reward_weights=[2.0, 0.5, 0.5, 0.5],
    check=check,
    rows=rows,
    answer_columns=("question", "answer", CHECKER_COLUMN),
    reference_completion=reference_completion,
    default_options=DEFAULTS,
)
