"""What the commands print: numbers as the tables show them, a stage's result as JSON, no weight-loading bars."""

from __future__ import annotations

import argparse
import json
from typing import Any


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_result(result: dict[str, Any]) -> int:
    """A stage command's result (``eval``, ``sft``, ``sample``, ``export``, ``pipeline``) as JSON; exit code 0."""
    print(json.dumps(result, indent=1, default=str))
    return 0


def hide_weight_loading_bars(args: argparse.Namespace) -> None:
    """transformers' per-file weight-loading bars off, unless ``--verbose`` (ours is the step bar)."""
    if not args.verbose:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
