"""``lowvram-r1 score``: one completion scored with a task's rewards, as training would score it (debugging).

lowvram-r1 score --task countdown --row '{"nums": [1, 2], "target": 3}' --completion '<answer>1 + 2</answer>'
lowvram-r1 score --config runs/NAME/config.yaml --tokenizer runs/NAME/adapter --row ... --completion ...
"""

from __future__ import annotations

import argparse
import json
import re
import sys


def add(subparsers: argparse._SubParsersAction) -> None:
    score = subparsers.add_parser("score", help="score one completion with a task's rewards (debugging)")
    score.add_argument("--task", help="task name or spec (see `lowvram-r1 tasks`; default: the --config's)")
    score.add_argument("--row", required=True, help='the dataset row as JSON, e.g. \'{"nums": [1, 2], "target": 3}\'')
    score.add_argument("--completion", required=True, help="the completion text ('-' reads standard input)")
    from lowvram_r1.cli.rewards import add_reward_arguments

    add_reward_arguments(score)


def run(args: argparse.Namespace) -> int:
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
