"""``lowvram-r1 tasks``: the tasks with their rewards and weights; ``--check SPEC`` checks one.

lowvram-r1 tasks [--rg]
lowvram-r1 tasks --check ./my_task.py:TASK [--reward ./r.py:fn=0.1] [--data-path rows.jsonl]
"""

from __future__ import annotations

import argparse


def add(subparsers: argparse._SubParsersAction) -> None:
    tasks = subparsers.add_parser("tasks", help="list tasks with their reward functions and weights")
    tasks.add_argument("--rg", action="store_true", help="also list every reasoning-gym dataset (rg:<name>)")
    tasks.add_argument("--check", metavar="SPEC", help="check a task (./my_task.py:TASK, module:TASK or a name)")
    from lowvram_r1.cli.rewards import add_reward_arguments

    add_reward_arguments(tasks, tokenizer=False)


def run(args: argparse.Namespace) -> int:
    from lowvram_r1.cli.rewards import cmd_check_task, listed_tasks, run_rewards

    if args.check:
        return cmd_check_task(args)
    for name, task in listed_tasks():
        print(f"{name}: {task.description}")
        args.task = name
        for reward in run_rewards(args)[2]:
            print(f"    {reward.weight:>5.2f}  {reward.name}{'  (monitor)' if reward.source == 'monitor' else ''}")
        if task.default_options:
            print("    options: " + ", ".join(f"{k}={v}" for k, v in task.default_options.items()))
    if args.rg:
        from lowvram_r1.tasks.rg import rg_names

        print("\nreasoning-gym datasets (use as --task rg:<name>; rewards: soft_format 0.2, rg_score 1.0):")
        print("    " + ", ".join(rg_names()))
    else:
        print("\n...and rg:<name> for any reasoning-gym dataset (lowvram-r1 tasks --rg lists them)")
    return 0
