"""Rejection sampling (R1's third stage): n completions per prompt, keep those the task's ``check`` and the
format accept, write an SFT-ready dataset plus its statistics.

    lowvram-r1 sample --task countdown --model runs/NAME/merged-16bit --n 8 --limit 500 --out samples.jsonl

Each kept line is ``{"prompt": [...messages], "completion": [{"role": "assistant", "content": ...}]}`` — the
prompt/completion layout TRL's SFTTrainer reads, so ``lowvram-r1 sft --data samples.jsonl`` takes it as is.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lowvram_r1.rewards.format import soft_format_reward
from lowvram_r1.runs import write_atomic
from lowvram_r1.tasks.base import Task
from lowvram_r1.train.evaluate import Generator, generate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleStats:
    prompts: int
    generated: int
    kept: int
    kept_fraction: float
    prompts_with_a_keeper: float  # share of prompts with at least one kept completion
    pass_rate_histogram: dict[str, int]  # "k/n" -> number of prompts with k of n kept


def rejection_sample(
    model: Any,
    tokenizer: Any,
    task: Task,
    rows: list[dict],
    n: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    generator: Generator | None = None,
) -> tuple[list[dict], SampleStats]:
    """Kept SFT rows and the statistics of one rejection-sampling pass. ``generator``: how to generate instead of
    transformers ``generate`` (a search task's :func:`~lowvram_r1.train.evaluate.task_generator`, which searches)."""
    prompts = [row["prompt"] for row in rows for _ in range(n)]
    if generator is not None:
        completions = generator(prompts, max_new_tokens, temperature)
    else:
        completions = generate(model, tokenizer, prompts, max_new_tokens, temperature)
    formatted = soft_format_reward(completions, prompts=prompts)
    kept_rows, per_prompt = [], []
    for index, row in enumerate(rows):
        kept = 0
        for j in range(index * n, (index + 1) * n):
            if formatted[j] == 1.0 and task.check(completions[j], row):
                kept += 1
                kept_rows.append({"prompt": row["prompt"], "completion": _as_completion(row["prompt"], completions[j])})
        per_prompt.append(kept)
    histogram: dict[str, int] = {}
    for kept in per_prompt:
        histogram[f"{kept}/{n}"] = histogram.get(f"{kept}/{n}", 0) + 1
    stats = SampleStats(
        prompts=len(rows),
        generated=len(completions),
        kept=len(kept_rows),
        kept_fraction=len(kept_rows) / max(len(completions), 1),
        prompts_with_a_keeper=sum(k > 0 for k in per_prompt) / max(len(rows), 1),
        pass_rate_histogram=dict(sorted(histogram.items(), key=lambda item: int(item[0].split("/")[0]))),
    )
    return kept_rows, stats


def _as_completion(prompt: Any, text: str) -> Any:
    return text if isinstance(prompt, str) else [{"role": "assistant", "content": text}]


def write_samples(rows: list[dict], stats: SampleStats, out: Path) -> Path:
    """Write kept rows as .jsonl or .parquet, and the statistics beside them (``<out>.stats.json``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        from datasets import Dataset

        Dataset.from_list(rows).to_parquet(str(out))
    elif out.suffix == ".jsonl":
        write_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    else:
        raise ValueError(f"--out must end in .jsonl or .parquet, got {out.name}")
    stats_file = out.with_suffix(".stats.json")
    write_atomic(stats_file, json.dumps(stats.__dict__, indent=1))
    return stats_file
