"""``lowvram-r1 tasks --check SPEC``: what our own tests check on our tasks, run on anyone's.

    findings = checkup(task, rewards)          # rewards: rewards.weighted.reward_list(...)
    print("\\n".join(str(f) for f in findings)); failed = [f for f in findings if not f.ok]

Rows build for both splits and are disjoint; the reference (or gold) answer passes ``check`` and out-scores a wrong
one; every reward returns one number (or None) per completion and survives hostile completions (empty, 100 kB,
unicode, conversational); each reward's time per completion; the task and its rewards pickle.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lowvram_r1.rewards.weighted import WeightedReward, checked_values, weighted_total
from lowvram_r1.tasks.base import Split, Task

HOSTILE: dict[str, Any] = {
    "the empty completion": "",
    "a 100 kB completion": "<think>\n" + "9 " * 50_000 + "\n</think>\n<answer>\n1\n</answer>",
    "a unicode completion": "<think>\nñ 漢字 🙂 \u202e\x00 ∑\n</think>\n<answer>\n½ 🙂\n</answer>",
    "a conversational completion": [{"role": "assistant", "content": "<think>\nok\n</think>\n<answer>\n1\n</answer>"}],
    "unclosed tags": "<think>\n<answer>\n<answer>",
}


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    detail: str

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}: {self.detail}"


def _call(reward: WeightedReward, completions: list[Any], rows: Sequence[dict]) -> list[float | None]:
    """The reward called as TRL calls it: prompts, completions, completion_ids and the rows' columns."""
    columns = {k: [row.get(k) for row in rows] for k in rows[0] if k != "prompt"}
    texts = [c if isinstance(c, str) else json.dumps(c) for c in completions]
    ids = [[ord(ch) % 1000 for ch in text[:4096]] for text in texts]
    prompts = [row.get("prompt") for row in rows]
    values = reward.fn(completions=completions, prompts=prompts, completion_ids=ids, **columns)
    return checked_values(values, len(completions), reward.name)


def _rows(task: Task, data_path: str | None, options: dict[str, Any]) -> tuple[list[Finding], list[dict]]:
    try:
        train = task.build_rows(Split("train", 64, 0, data_path, options))
        test = task.build_rows(Split("test", 32, 0, data_path, options))
    except Exception as error:  # the user's loader: report what it raised
        return [Finding(False, "rows", f"{type(error).__name__}: {error}")], []
    seen = {json.dumps(r["prompt"], sort_keys=True, default=str) for r in train}
    shared = sum(json.dumps(r["prompt"], sort_keys=True, default=str) in seen for r in test)
    finding = Finding(
        shared == 0,
        "rows",
        f"{len(train)} train and {len(test)} test rows (first 64/32), columns {', '.join(sorted(train[0]))}; "
        + ("the splits are disjoint" if not shared else f"{shared} test prompts are also training prompts"),
    )
    return [finding], train


def _reference(task: Task, rewards: Sequence[WeightedReward], rows: list[dict]) -> list[Finding]:
    if task.reference_completion is None:
        return [Finding(True, "reference", "the task writes no reference completions: gold-answer check skipped")]
    findings = []
    for index, row in enumerate(rows[:8]):
        right = task.reference_completion(row)
        wrong_row = next((r for r in rows if task.reference_completion(r) != right), None)
        if not task.check(right, row):
            return [Finding(False, "reference", f"check rejects the reference completion of row {index}: {right!r}")]
        if wrong_row is None:
            continue
        wrong = task.reference_completion(wrong_row)
        try:
            totals = [weighted_total(rewards, [_call(r, [c], [row])[0] for r in rewards]) for c in (right, wrong)]
        except Exception:  # a reward that fails here is reported on its own line below
            return [Finding(True, "reference", "passes check; totals not compared (a reward fails: see below)")]
        if task.check(wrong, row) and totals[1] >= totals[0]:
            continue  # another row's answer that happens to be right here too
        if totals[1] >= totals[0]:
            findings.append(
                Finding(False, "reference", f"a wrong answer scores {totals[1]:.3f}, the right one {totals[0]:.3f}")
            )
            return findings
    return [Finding(True, "reference", "the reference answer passes check and out-scores a wrong one")]


def checkup(
    task: Task, rewards: Sequence[WeightedReward], data_path: str | None = None, options: dict | None = None
) -> list[Finding]:
    """Every finding about ``task`` with ``rewards`` (the run's reward list); failures have ``ok`` False."""
    options = task.resolve_options(options or {})
    findings, rows = _rows(task, data_path, options)
    if not rows:
        return findings
    findings += _reference(task, rewards, rows)
    for reward in rewards:
        problem = None
        for label, completion in [*HOSTILE.items(), ("a batch of 4 completions", None)]:
            batch = [completion] if completion is not None else [""] * 4
            try:
                _call(reward, batch, rows[: len(batch)] if len(rows) >= len(batch) else rows[:1] * len(batch))
            except Exception as error:
                problem = f"on {label}: {type(error).__name__}: {str(error)[:200]}"
                if isinstance(error, KeyError | TypeError):  # often a column the rows do not have
                    problem += f" (the rows' columns: {', '.join(sorted(rows[0]))})"
                break
        if problem is None:  # its time on the reference completions (or a plain answer-shaped one)
            sample = rows[:16]
            plain = "<think>\nworking\n</think>\n<answer>\n1\n</answer>"
            texts = [task.reference_completion(r) if task.reference_completion else plain for r in sample]
            started = time.perf_counter()
            try:
                _call(reward, texts, sample)
            except Exception as error:
                problem = f"on the reference completions: {type(error).__name__}: {str(error)[:200]}"
            per = (time.perf_counter() - started) / len(sample)
        detail = problem or f"one value per completion, survives hostile input; {per * 1000:.2f} ms per completion"
        findings.append(Finding(problem is None, f"reward {reward.name}", detail))
    for label, completion in HOSTILE.items():
        try:
            task.check(completion, rows[0])
        except Exception as error:
            findings.append(Finding(False, "check", f"raises on {label}: {type(error).__name__}: {error}"))
            break
    try:
        pickle.dumps((task, [r.fn for r in rewards]))
        findings.append(Finding(True, "pickle", "the task and its rewards pickle (several processes need it)"))
    except Exception as error:
        findings.append(
            Finding(False, "pickle", f"{type(error).__name__}: {error} (define rewards with def at module level)")
        )
    return findings
