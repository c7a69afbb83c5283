"""The reward side of ``tasks`` and ``score``: the run's reward list built as ``train`` builds it, and
``tasks --check``.

    lowvram-r1 tasks --check ./my_task.py:TASK [--reward ./r.py:fn=0.1] [--data-path rows.jsonl]
    lowvram-r1 score --config runs/NAME/config.yaml --tokenizer runs/NAME/adapter --row ... --completion ...
"""

from __future__ import annotations

import argparse
from typing import Any


def argparse_type(parse: Any) -> Any:
    """A parser raising ``ValueError`` as an argparse type (its message kept: argparse's own says only 'invalid')."""

    def typed(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return typed


def add_reward_arguments(*parsers: argparse.ArgumentParser, tokenizer: bool = True) -> None:
    """``--reward``, ``--config`` and ``--data-path`` for ``tasks`` and ``score``; ``--tokenizer`` for ``score``."""
    from lowvram_r1.rewards.weighted import parse_reward_flag

    for parser in parsers:
        parser.add_argument(
            "--reward",
            action="append",
            type=argparse_type(parse_reward_flag),
            metavar="SPEC[=WEIGHT]",
            help="re-weight a reward by name, or add one (./file.py:fn, module:fn, a trl.rewards name); repeatable",
        )
        parser.add_argument("--config", help="a recipe or a run's config.yaml: its task, weights and shaping")
        parser.add_argument("--data-path", help="local dataset file for the task's rows")
    if not tokenizer:
        return
    parsers[-1].add_argument(
        "--tokenizer", help="tokenizer folder (a run's adapter/): completion_ids for the token-counting shaping rewards"
    )


def run_rewards(args: argparse.Namespace) -> tuple[Any, Any, list[Any]]:
    """(config, task, reward list) as ``train`` would resolve them from the same recipe and flags."""
    from lowvram_r1 import config
    from lowvram_r1.rewards.weighted import reward_list
    from lowvram_r1.run_plan import resolve

    overrides: dict[str, Any] = {}
    if getattr(args, "task", None):
        overrides["task.name"] = args.task
    if getattr(args, "reward", None):
        overrides["task.rewards"] = dict(args.reward)
    if getattr(args, "data_path", None):
        overrides["task.data_path"] = args.data_path
    plan = resolve(config.load(getattr(args, "config", None), overrides))
    cfg, task = plan.cfg, plan.task
    return cfg, task, reward_list(task, cfg.task, cfg.generation.max_completion_length)


def completion_ids(args: argparse.Namespace, rewards: list[Any], completion: str) -> dict[str, Any]:
    """``completion_ids`` for the rewards that count tokens (the shaping ones), from ``--tokenizer``."""
    tokenizer_path = getattr(args, "tokenizer", None)
    shaping = [r.name for r in rewards if r.source == "shaping"]
    if not tokenizer_path:
        if shaping:
            raise ValueError(
                f"the run's shaping rewards ({', '.join(shaping)}) count tokens: pass --tokenizer FOLDER "
                "(the run's adapter/ folder, or the model's)"
            )
        return {}
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    return {"completion_ids": [tokenizer(completion, add_special_tokens=False)["input_ids"]]}


def listed_tasks() -> list[tuple[str, Any]]:
    """The built-in tasks, then those installed packages register (entry-point group ``lowvram_r1.tasks``)."""
    from lowvram_r1.tasks import TASKS, get_task
    from lowvram_r1.tasks.user import installed_task_names

    return sorted(TASKS.items()) + [(name, get_task(name)) for name in installed_task_names(TASKS)]


def cmd_check_task(args: argparse.Namespace) -> int:
    """``tasks --check SPEC``: print every finding; exit 1 when one fails (it names the reward and the input)."""
    from lowvram_r1.tasks.checkup import checkup

    args.task = args.check
    cfg, task, rewards = run_rewards(args)
    findings = checkup(task, rewards, cfg.task.data_path, dict(cfg.task.options))
    print(f"task {task.name} ({args.check}): {len(rewards)} rewards")
    for finding in findings:
        print(f"  {finding}")
    failed = [f for f in findings if not f.ok]
    print(f"{len(failed)} problem(s): see FAIL above" if failed else "the task passes every check")
    return 1 if failed else 0
