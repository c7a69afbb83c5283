"""``lowvram-r1 tasks``: the tasks with their rewards and weights; ``--check SPEC`` checks one.
"""

from __future__ import annotations

def cmd_tasks(args: argparse.Namespace) -> int:
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
