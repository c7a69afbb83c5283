"""The CLI's informational commands: ``tasks``, ``score``, ``runs`` and ``doctor`` (nothing trains here).

lowvram-r1 tasks [--rg]
lowvram-r1 score --task countdown --row '{"nums": [1, 2], "target": 3}' --completion '<answer>1 + 2</answer>'
lowvram-r1 runs [--root runs]
lowvram-r1 doctor
lowvram-r1 index --corpus passages.jsonl      # build the BM25 index of a {id, title, text} corpus (cached)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable


def add_info_commands(commands: argparse._SubParsersAction) -> None:
    tasks = commands.add_parser("tasks", help="list tasks with their reward functions and weights")
    tasks.add_argument("--rg", action="store_true", help="also list every reasoning-gym dataset (rg:<name>)")
    tasks.add_argument("--check", metavar="SPEC", help="check a task (./my_task.py:TASK, module:TASK or a name)")
    score = commands.add_parser("score", help="score one completion with a task's rewards (debugging)")
    score.add_argument("--task", help="task name or spec (see `lowvram-r1 tasks`; default: the --config's)")
    score.add_argument("--row", required=True, help='the dataset row as JSON, e.g. \'{"nums": [1, 2], "target": 3}\'')
    score.add_argument("--completion", required=True, help="the completion text ('-' reads standard input)")
    from lowvram_r1.cli.rewards import add_reward_arguments

    add_reward_arguments(tasks, score)
    runs = commands.add_parser("runs", help="list run directories")
    runs.add_argument("--root", default="runs", help="folder holding run directories (default: runs)")
    commands.add_parser("doctor", help="GPU, package versions against the pinned set, backend that train would use")
    index = commands.add_parser("index", help="build the BM25 index of a passage corpus for the search tasks")
    index.add_argument("--corpus", help="jsonl of {id, title, text} rows (default: the invented world's corpus)")
    index.add_argument("--index-dir", help="where to put the index (default: the cache, keyed by the corpus file)")


def cmd_score(args: argparse.Namespace) -> int:
    from lowvram_r1.cli.rewards import completion_ids, run_rewards
    from lowvram_r1.rewards.weighted import score_one, weighted_total

    cfg, task, rewards = run_rewards(args)
    try:
        row = json.loads(args.row)
    except (ValueError, RecursionError) as error:  # RecursionError: nested deeper than Python's stack
        raise ValueError(f'--row is not valid JSON ({error}); e.g. --row \'{{"nums": [1, 2], "target": 3}}\'') from None
    missing = [c for c in task.answer_columns if c not in row] if isinstance(row, dict) else list(task.answer_columns)
    if missing:
        raise ValueError(
            f"--row lacks {', '.join(missing)}: task {task.name} rows need {', '.join(task.answer_columns)}"
        )
    completion = sys.stdin.read() if args.completion == "-" else args.completion
    extra = completion_ids(args, rewards, completion)
    values, errors = score_one(rewards, completion, row, **extra)
    for reward, value in zip(rewards, values, strict=True):
        shown = "error" if reward.name in errors else "skipped" if value is None else f"{value:.3f}"
        note = f"  ({errors[reward.name]})" if reward.name in errors else ""
        print(f"{reward.name:<28} {shown:>8}  x {reward.weight:g}{note}")
    print(f"{'weighted total':<28} {weighted_total(rewards, values):>8.3f}")
    if task.environment is not None or "<search>" in completion:  # a multi-turn completion: its turns
        from lowvram_r1.rewards.trace import parse_trace

        trace = parse_trace(completion)
        for k, query in enumerate(trace.queries, 1):
            came = trace.observations[k - 1] if k <= len(trace.observations) else None
            titles = "; ".join(re.findall(r"\(Title: ([^)\n]{0,300})\)", came or "")) or "no passages"
            print(f"  search {k}: {query[:200]!r} -> {titles if came is not None else 'no observation'}")
        if trace.forged:
            print("  forged: the completion writes an observation tag itself (no format credit)")
    print(f"{'check (correct)':<28} {str(bool(task.check(completion, row))):>8}")
    return 0


INFO_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "tasks": cmd_tasks,
    "score": cmd_score,
    "runs": cmd_runs,
    "doctor": cmd_doctor,
    "index": cmd_index,
}
