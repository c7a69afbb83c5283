"""Everything ``train`` checks before any weights load: the run folder, the task's rows, the model reference and
its context, the backend's own refusals, the longest prompt. Each failure is a ``ValueError`` saying what to do
(exit code 2 in the CLI), raised in seconds.

    run = run_dir_for(cfg)                              # the folder (named, or runs/<task>-<model>-<time>)
    prepared = prepare(cfg, run)                        # task rows + the checked model reference
    check_loadable(prepared, backend, hardware)         # hardware options, backend refusals, prompt lengths, and
                                                        # run-health warnings (train.start_checks)
    cfg = check_processes(cfg, processes, hardware)     # several training processes: what they cannot do
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from lowvram_r1.config import RunConfig, require
from lowvram_r1.models.hardware import Hardware, check_hardware_options
from lowvram_r1.models.prompts import prompt_text
from lowvram_r1.models.source import context_length, resolve_model, tiny_spec, tokenizer_path
from lowvram_r1.runs import RunDir, check_run_name
from lowvram_r1.tasks import Split, Task, get_task
from lowvram_r1.tasks.base import PromptFormat

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """What validation produced: the task, its rows, the run directory and the checked model reference."""

    cfg: RunConfig
    task: Task
    train_rows: list[dict]
    eval_rows: list[dict]
    run: RunDir
    model_ref: str | None  # a checked local folder or hub id; None for the tiny model (built after every check)


def default_run_dir(cfg: RunConfig) -> Path:
    from lowvram_r1.tasks.user import task_label

    model = Path(cfg.model.name).name.replace("/", "-") or "model"
    label = task_label(cfg.task.name, get_task(cfg.task.name))  # a user's task: its name, not its file path
    return Path("runs") / check_run_name(f"{label}-{model}-{datetime.now():%Y%m%d-%H%M%S}")


def run_dir_for(cfg: RunConfig, default: Path | None = None) -> RunDir:
    """The run folder ``cfg`` names, checked against what it holds: a new run must not land on an old one, a
    resume needs a complete checkpoint (a foreign or busy folder is refused when the session claims it)."""
    path = Path(cfg.run.output_dir) if cfg.run.output_dir else default or default_run_dir(cfg)
    check_run_name(path.name)
    run = RunDir(path)
    if cfg.run.resume:
        if run.last_checkpoint() is None:
            raise ValueError(f"--resume: {path} has no complete checkpoint to resume from")
        from lowvram_r1.train.resume import check_resume

        check_resume(cfg, run)  # what the checkpoint cannot honour (LoRA shape, base model) is refused now
    elif run.config.exists():
        raise ValueError(f"{path} already holds a run: pass --resume to continue it, or another --output-dir")
    return run


def prepare(
    cfg: RunConfig, run: RunDir, imports_first: bool = False, rows: Callable[[RunConfig], list[dict]] | None = None
) -> Prepared:
    """The task's rows and the model reference, checked without loading weights. ``imports_first``: the run's
    backend must import its library before trl (Unsloth): a reward list that imports trl (shaping, a
    ``trl.rewards`` name) is then built and checked by the engine once the backend has loaded. ``rows``: the
    stage's own training rows (SFT's traces) instead of the task's splits."""
    task = get_task(cfg.task.name)
    from lowvram_r1.rewards.user import needs_trl
    from lowvram_r1.rewards.weighted import reward_list

    if not (imports_first and needs_trl(cfg.task)):
        reward_list(task, cfg.task, cfg.generation.max_completion_length)  # --reward specs load and fit, or say why
    if cfg.model.name == "tiny":
        tiny_spec(cfg)  # a task the tiny model cannot be built for is refused before its data is fetched
    train_rows, eval_rows = task_rows(cfg, task) if rows is None else (rows(cfg), [])
    model_ref = None
    if cfg.model.name != "tiny":  # the tiny model is built with a context that holds the lengths
        model_ref = resolve_model(cfg)  # a wrong path or a hub id without network fails here
        check_context(cfg, model_ref)
    elif cfg.model.load_in_4bit:
        logger.info("4-bit loading of the tiny model: fine for testing the QLoRA path, not faster")
    return Prepared(cfg, task, train_rows, eval_rows, run, model_ref)


def task_rows(cfg: RunConfig, task: Task) -> tuple[list[dict], list[dict]]:
    """The task's train rows and its held-out rows (none without an eval size)."""
    options = task.resolve_options(cfg.task.options)
    split = Split("train", cfg.task.train_size, cfg.task.data_seed, cfg.task.data_path, options)
    fmt = PromptFormat(cfg.task.prompt_style, cfg.task.system_prompt, cfg.task.assistant_prefill)
    train_rows = task.build_rows(split, fmt)
    eval_split = replace(split, split="test", size=cfg.task.eval_size)
    return train_rows, task.build_rows(eval_split, fmt) if cfg.task.eval_size else []


def check_processes(cfg: RunConfig, processes: int, hardware: Hardware) -> RunConfig:
    """What a run of ``processes`` training processes (started by a launcher) cannot do; returns ``cfg`` with the
    real number of processes, so that config.yaml (and a ``--resume`` from it) says how many trained."""
    from lowvram_r1.backends.registry import resolve_backend

    if processes == 1:
        require(
            cfg.run.num_processes == 1,
            f"--num-processes {cfg.run.num_processes} needs a launcher: start it with `lowvram-r1 train "
            f"--num-processes {cfg.run.num_processes} ...` (or `accelerate launch -m lowvram_r1.cli train ...`)",
        )
        return cfg
    require(
        resolve_backend(cfg, hardware.cuda)[0] != "unsloth",
        "the unsloth backend trains on one GPU (its vLLM engine shares that GPU's weights): pass --backend hf for "
        "several processes, or --num-processes 1",
    )
    if cfg.model.name == "tiny":
        from lowvram_r1.models.tiny import tiny_model_is_built

        require(
            tiny_model_is_built(tiny_spec(cfg)),
            "the tiny model for this run is not built yet, and several processes must not build it together: start "
            "the run with `lowvram-r1 train --num-processes N ...` (it builds the model first), or train it once "
            "with one process",
        )
    return replace(cfg, run=replace(cfg.run, num_processes=processes))


def check_context(cfg: RunConfig, model_path: str) -> None:
    """Prompt + completion must fit the model's positions (read from config.json: no weights load)."""
    g = cfg.generation
    context = context_length(model_path)
    inserted = get_task(cfg.task.name).environment_tokens(cfg.task.options)  # search tasks: retrieved passages
    if context and g.max_prompt_length + g.max_completion_length + inserted > context:
        extra = f" + up to {inserted} retrieved tokens" if inserted else ""
        raise ValueError(
            f"max_prompt_length + max_completion_length{extra} = "
            f"{g.max_prompt_length + g.max_completion_length + inserted} exceeds the model's context of {context} "
            "tokens: lower --max-prompt-length or --max-completion-length"
            + (" (or the task options max_turns / top_k / max_passage_tokens)" if inserted else "")
        )


def check_loadable(prepared: Prepared, backend: Any, hardware: Hardware, warnings: bool = True) -> None:
    """The last checks before loading: options this machine cannot run, the backend's own refusals (the unsloth
    backend imports Unsloth here, before anything else imports transformers), the longest prompt. ``warnings``:
    log GRPO's start warnings (``train.start_checks``; SFT has none of what they look at)."""
    cfg = prepared.cfg
    check_hardware_options(cfg, hardware)
    source = prepared.model_ref or tokenizer_path(cfg)  # the tiny model: only its tokenizer so far (seconds)
    backend.check(cfg, hardware, source)
    tokenizer = check_prompt_lengths(prepared, source)
    if warnings:
        from lowvram_r1.train.start_checks import log_start_warnings

        log_start_warnings(prepared, tokenizer)  # configurations sure to produce a run-health finding


def check_prompt_lengths(prepared: Prepared, source: str) -> Any:
    """The longest prompt (of the first rows of each split) must fit max_prompt_length; tokenizer only (returned)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=prepared.cfg.model.trust_remote_code)
    g = prepared.cfg.generation
    texts = [prompt_text(tokenizer, row_prompt(r)) for r in prepared.train_rows[:256] + prepared.eval_rows[:64]]
    longest = max(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    if longest > g.max_prompt_length:
        raise ValueError(
            f"a prompt has {longest} tokens, more than max_prompt_length {g.max_prompt_length}: "
            f"raise --max-prompt-length to at least {longest}"
        )
    return tokenizer


def row_prompt(row: dict) -> Any:
    """A row's prompt: its ``prompt`` column, or (SFT's ``messages`` layout) the messages before the last answer."""
    if "prompt" in row:
        return row["prompt"]
    messages = list(row["messages"])
    while messages and messages[-1].get("role") == "assistant":
        messages.pop()
    return messages or ""
