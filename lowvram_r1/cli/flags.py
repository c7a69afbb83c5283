"""The flags several commands share: one per config field, generated from the config's dataclasses (help and
choices from their metadata), the overrides they give, and argparse types.

    add_config_flags(parser)          # --task, --model, --max-steps, ... (default None: not given)
    config.load(args.config, overrides_from(args))
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from lowvram_r1 import config


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _bool_or_choice(choices: tuple) -> Any:
    """The flag type of a ``bool | str`` field: a true/false word, or one of the field's other choices."""

    def parse(text: str) -> bool | str:
        if text.lower() in choices:
            return text.lower()
        try:
            return _parse_bool(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected {config.spoken(choices)}, got {text!r}") from None

    return parse


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, help and choices from the dataclass metadata; default None = not given."""
    from lowvram_r1.tasks import TASKS

    for section, field in config.all_fields():
        if field.name == "options":
            continue  # a mapping: YAML only
        flag = "--" + config.flag_name(section, field)
        kind = str(field.type)
        kwargs: dict[str, Any] = {"default": None, "help": f"[{section}] {field.metadata.get('help', '')}"}
        choices = field.metadata.get("choices")
        if flag == "--task":
            choices = None  # checked later so the error can list tasks (exit 2) rather than argparse's wording
            kwargs["help"] += f" ({', '.join(sorted(TASKS))})"
        if field.name == "rewards":  # --reward SPEC[=WEIGHT], repeatable
            from lowvram_r1.cli.rewards import argparse_type
            from lowvram_r1.rewards.weighted import parse_reward_flag

            kwargs.update(action="append", type=argparse_type(parse_reward_flag), metavar="SPEC[=WEIGHT]")
            parser.add_argument(flag, dest=f"cfg:{section}.{field.name}", **kwargs)
            continue
        if kind == "bool | str":  # e.g. --gradient-checkpointing true|false|offload (alone: true)
            words = ",".join(str(c).lower() for c in choices)
            kwargs.update(nargs="?", const=True, type=_bool_or_choice(choices), metavar=f"{{{words}}}")
            parser.add_argument(flag, dest=f"cfg:{section}.{field.name}", **kwargs)
            continue
        if choices:
            kwargs["choices"] = choices
        if not kind.startswith("bool"):
            kwargs["metavar"] = flag[2:].upper().replace("-", "_")
        if kind.startswith("bool"):
            kwargs.update(nargs="?", const=True, type=_parse_bool, metavar="BOOL")
        elif kind.startswith("int"):
            kwargs["type"] = int
        elif kind.startswith("float"):
            kwargs["type"] = float
        elif kind.startswith("list[float]"):
            kwargs.update(nargs="+", type=float)
        parser.add_argument(flag, dest=f"cfg:{section}.{field.name}", **kwargs)


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {key[4:]: value for key, value in vars(args).items() if key.startswith("cfg:") and value is not None}
    if "task.rewards" in overrides:  # --reward pairs, repeated: a mapping laid over the recipe's
        overrides["task.rewards"] = dict(overrides["task.rewards"])
    return overrides


MAX_ROWS = 1_000_000  # rows one eval or sample command reads (procedural tasks make at most this many too)


def count(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in ``low..high`` (an error, exit 2, names the flag and the range)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {value}")
        return value

    return parse


def add_stage_flags(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--no-progress`` and the config flags of a stage command (``eval``, ``sft``, ``sample``,
    ``pipeline``)."""
    parser.add_argument("--config", help="a recipe name (lowvram-r1 recipes) or YAML file: model, task, generation")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser)


def stage_config(args: argparse.Namespace) -> config.RunConfig:
    """A stage command's config: defaults < ``--config`` < flags."""
    return config.load(args.config, overrides_from(args))
