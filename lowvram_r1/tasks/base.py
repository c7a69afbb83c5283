"""What a task is: a dataset source, a prompt, a reward bundle and a correctness check — in one dataclass.

Each task file builds one :class:`Task`; ``lowvram_r1.tasks.TASKS`` maps names to them. Engine, eval, CLI and
panel read tasks only through this type, so adding a task is adding a file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowvram_r1.tasks.option_checks import checked_numbers

logger = logging.getLogger(__name__)

# DeepSeek-R1-Zero's template for base models without a chat template (prompt_style="plain").
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {question} Assistant:"
)


class TaskDataError(ValueError):
    """A dataset cannot serve this task (missing file, missing columns, no network for a hub id)."""


@dataclass(frozen=True)
class Split:
    """Which rows to produce: ``split`` is "train" or "test"; ``size`` caps the row count (0 = all)."""

    split: str
    size: int
    seed: int
    data_path: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError(
                f"the {self.split} split's size must be a whole number, 0 (all) or more; got {self.size!r}"
            )


def question_column(row: dict, options: Mapping[str, Any]) -> str:
    """The default question: the row's ``question`` column as it is."""
    return str(row["question"])


@dataclass(frozen=True)
class PromptFormat:
    """How a question becomes a prompt: ``chat`` messages or the ``plain`` R1-Zero text; ``system_prompt``
    replaces the task's own (``""`` drops it); ``prefill`` starts the assistant's answer (e.g. ``"<think>"``)."""

    style: str = "chat"
    system_prompt: str | None = None
    prefill: str = ""


@dataclass(frozen=True)
class Task:
    """A task preset. ``reward_funcs[i]`` is weighted by ``reward_weights[i]`` (0 = logged, not optimised)."""

    name: str
    description: str
    system_prompt: str
    reward_funcs: Sequence[Callable[..., list[float | None]]]
    reward_weights: Sequence[float]
    check: Callable[[str, dict], bool]
    rows: Callable[[Split], list[dict]]
    answer_columns: tuple[str, ...]
    question: Callable[[dict, dict], str] = question_column  # (row, resolved options) -> the user's question
    reference_completion: Callable[[dict], str] | None = None
    default_options: Mapping[str, Any] = field(default_factory=dict)
    # False for a row whose gold answer cannot be graded (math-verify cannot parse it): eval counts such rows
    # apart instead of as failures. None: every row is gradable.
    gradable: Callable[[dict], bool] | None = None
    # Options the built-in tiny model uses unless a recipe says otherwise: a variant ~1M parameters can learn.
    tiny_options: Mapping[str, Any] = field(default_factory=dict)
    # TinySpec fields this task's tiny model is built with (e.g. a larger cold-start budget for long traces).
    tiny_sizes: Mapping[str, Any] = field(default_factory=dict)
    # Multi-turn tasks: resolved options -> the environment's settings (e.g. envs.search.SearchSettings, validated
    # on construction); the engine then rolls out through lowvram_r1.rollout.multiturn. None: single turn.
    environment: Callable[[dict[str, Any]], Any] | None = None
    # The stages ``lowvram-r1 pipeline`` chains for this task unless --stages says otherwise (lowvram_r1.pipeline.
    # chain: e.g. ("grpo:stage=1", "grpo:stage=2")); empty: R1's sft, grpo, sample, sft, grpo.
    pipeline: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.reward_funcs) != len(self.reward_weights):
            raise ValueError(
                f"task {self.name}: {len(self.reward_funcs)} rewards but {len(self.reward_weights)} weights"
            )
        for fn in self.reward_funcs:
            if not fn.__name__.endswith("_reward"):
                raise ValueError(f"task {self.name}: reward function {fn.__name__} must be named *_reward")

    @property
    def reward_names(self) -> list[str]:
        return [fn.__name__ for fn in self.reward_funcs]

    def resolve_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Task options with defaults filled in; unknown keys are an error listing the valid ones."""
        unknown = sorted(set(options) - set(self.default_options))
        if unknown:
            valid = ", ".join(sorted(self.default_options)) or "(none)"
            raise ValueError(f"task {self.name} has no option {', '.join(unknown)}; valid options: {valid}")
        return {**self.default_options, **checked_numbers(self.name, self.default_options, options)}

    def environment_tokens(self, options: Mapping[str, Any]) -> int:
        """The most tokens the environment inserts into one completion (0 for single-turn tasks): memory planning
        and the generation engine's context count them on top of the completion length."""
        if self.environment is None:
            return 0
        return int(self.environment(self.resolve_options(options)).observation_tokens())

    def prompt(
        self, row: Mapping[str, Any], fmt: PromptFormat | None = None, options: Mapping[str, Any] | None = None
    ) -> list[dict[str, str]] | str:
        """The prompt column for a row: chat messages for instruct models, the R1-Zero text for base models,
        ending with the assistant prefill when there is one."""
        fmt = fmt or PromptFormat()
        question = self.question(dict(row), self.resolve_options(options or {}))
        if fmt.style == "plain":
            return R1_ZERO_TEMPLATE.format(question=question) + (f" {fmt.prefill}" if fmt.prefill else "")
        system = self.system_prompt if fmt.system_prompt is None else fmt.system_prompt
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": question})
        if fmt.prefill:  # TRL continues a final assistant message instead of opening a new one
            messages.append({"role": "assistant", "content": fmt.prefill})
        return messages

    def build_rows(self, split: Split, fmt: PromptFormat | None = None) -> list[dict[str, Any]]:
        """Rows for training or evaluation: the task's answer columns plus ``prompt``, validated."""
        options = self.resolve_options(split.options)
        raw = self.rows(Split(split.split, split.size, split.seed, split.data_path, options))
        if not raw:
            held_out = options.get("test_size")
            hint = (
                f" (the first test_size={held_out} rows of a local file are held out for evaluation)"
                if split.data_path and held_out
                else ""
            )
            raise TaskDataError(f"task {self.name}: the {split.split} split is empty{hint}")
        missing = [c for c in self.answer_columns if c not in raw[0]]
        if missing:
            raise TaskDataError(
                f"task {self.name}: dataset rows lack column(s) {', '.join(missing)}; "
                f"rows need {', '.join(self.answer_columns)} (found: {', '.join(sorted(raw[0]))})"
            )
        return [{**row, "prompt": self.prompt(row, fmt, options)} for row in raw]


def read_local_rows(path: str) -> list[dict[str, Any]]:
    """Rows of a local ``.jsonl``/``.json``/``.parquet``/``.csv`` file, through ``datasets``."""
    file = Path(path)
    if not file.is_file():
        raise TaskDataError(f"dataset file {path} does not exist")
    kinds = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
    kind = kinds.get(file.suffix.lower())
    if kind is None:
        raise TaskDataError(f"dataset file {path}: unsupported type {file.suffix!r}; use one of {', '.join(kinds)}")
    import datasets  # lazy: pyarrow is heavy and only loaders need it

    try:
        return datasets.load_dataset(kind, data_files=str(file), split="train").to_list()
    except Exception as error:  # datasets raises many types for a malformed file; say which file and why
        raise TaskDataError(f"dataset file {path} could not be read: {error}") from error


def local_split(split: Split) -> list[dict[str, Any]]:
    """One local file serves both splits: its first ``test_size`` rows are held out for evaluation."""
    source = read_local_rows(str(split.data_path))
    held_out = split.options["test_size"]
    return source[:held_out] if split.split == "test" else source[held_out:]


def read_hub_rows(hub_id: str, config: str | None, split: str) -> list[dict[str, Any]]:
    """Rows of a hub dataset split; a clear :class:`TaskDataError` when the hub cannot be reached."""
    import datasets

    try:
        return datasets.load_dataset(hub_id, config, split=split).to_list()
    except Exception as error:  # ConnectionError, OfflineModeIsEnabled, HfHubHTTPError, DatasetNotFoundError...
        raise TaskDataError(
            f"could not load dataset {hub_id} from the hub ({type(error).__name__}: {str(error)[:200]}). "
            "Without network, pass a local file with --data-path, or pick a procedural task (lowvram-r1 tasks)."
        ) from error


def take(rows: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The first ``size`` rows (all when ``size`` is 0)."""
    return rows[:size] if size else rows
