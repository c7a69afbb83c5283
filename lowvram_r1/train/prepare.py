"""Everything a training stage checks before any weights load, in two calls: before the run folder is claimed, and
after. Each failure is a ``ValueError`` saying what to do (exit code 2 in the CLI), raised in seconds.

    plan = settle_stage(plan, processes)                # backend, what the processes cannot do, the stage's settings,
                                                        # the combination's refusals and switches (train.combinations)
    run = run_dir_for(plan)                             # the folder (named, or runs/<task>-<model>-<time>)
    prepared = prepare(plan, run, backend, memory)      # reward list, task rows, model reference and its context,
                                                        # the memory plan (refuse, shrink or go on), hardware options,
                                                        # the backend's refusals, the longest prompt, start warnings

``plan`` is the run resolved once (:mod:`lowvram_r1.run_plan`): its task, options, prompt format, sequence budget,
tiny model spec, hardware and backend choice. The stage runner (:mod:`lowvram_r1.train.stage`) and the launcher of
several processes (``cli/launch.py``) make the same calls.

What a check means for a stage that generates nothing (SFT: ``generates=False``) is decided here, once:
- rollouts: SFT runs with ``use_vllm`` off, so the vLLM checks (bitsandbytes plugin, server), the vLLM share and the
  rollout KV cache of the memory plan do not apply: its plan is one training step (the planner's phases without
  ``rollout``), and a plan that does not fit is refused with SFT's own knobs (``--force`` tries anyway);
- the reward list is still built and checked: the same config drives the GRPO stages of a pipeline, and a
  ``--reward`` that cannot load should fail in seconds, not after an SFT run;
- the start warnings (group size, temperature, reward weights, truncated reference completions) are GRPO's
  findings: SFT has no groups, no sampling and no rewards, so it skips them;
- SFT trains in one process (``--num-processes`` above 1 is refused, as GRPO refuses it without a launcher) and on
  the hf backend (TRL's SFTTrainer on the peft model, as before): ``--backend unsloth`` is still refused where
  Unsloth cannot run (no GPU), and on a GPU the GRPO stages of the pipeline use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from lowvram_r1.config import RunConfig, require
from lowvram_r1.models.hardware import check_hardware_options
from lowvram_r1.models.prompts import prompt_text
from lowvram_r1.models.source import context_length
from lowvram_r1.run_plan import RunPlan
from lowvram_r1.runs import RunDir, check_run_name
from lowvram_r1.tasks import Task

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """What validation produced: the plan, the task's rows, the run directory and the checked model reference."""

    plan: RunPlan
    train_rows: list[dict]
    eval_rows: list[dict]
    run: RunDir
    model_ref: str | None  # a checked local folder or hub id; None for the tiny model (built after every check)

    @property
    def cfg(self) -> RunConfig:
        return self.plan.cfg

    @property
    def task(self) -> Task:
        return self.plan.task


@dataclass(frozen=True)
class MemoryRequest:
    """What the caller asks of the memory plan: the detected GPU's memory (None without CUDA), ``--gpu-memory``,
    ``--auto-fit`` (shrink until it fits) and ``--force`` (train anyway); see ``memory.fit.fit_plan``."""

    cuda_gb: float | None = None
    gpu_memory: str | None = None
    auto_fit: bool = False
    force: bool = False


def config_for_stage(cfg: RunConfig, generates: bool, processes: int = 1) -> RunConfig:
    """``cfg`` as a stage runs it: a stage that generates nothing runs without vLLM (module docstring); the real
    number of training processes, so that config.yaml (and a ``--resume`` from it) says how many trained."""
    run = replace(cfg.run, num_processes=processes)
    if generates:
        return replace(cfg, run=run)
    return replace(cfg, generation=replace(cfg.generation, use_vllm=False, vllm_mode="colocate"), run=run)


def settle_stage(
    plan: RunPlan, processes: int, *, stage: str = "grpo", generates: bool = True, announce: bool = True
) -> RunPlan:
    """The plan as a stage runs it in ``processes`` training processes on the plan's hardware: the backend it loads
    with, and why (the caller's choice for a generating stage when it made one; SFT: hf), what the processes cannot
    do, the stage's own settings, and the combination's refusals and switches (``combinations.settle``;
    ``announce``: log what is switched off)."""
    from lowvram_r1.backends.registry import resolve_backend
    from lowvram_r1.train.combinations import settle

    if not generates:  # unsloth: refused without a GPU
        backend = ("hf", f"{stage} trains with TRL's trainer on the peft model")
    elif plan.backend:
        backend = (plan.backend, plan.backend_reason)
    else:
        backend = resolve_backend(plan.cfg, plan.hardware is not None and plan.hardware.cuda)
    require(
        generates or plan.cfg.run.num_processes == 1,
        f"{stage} trains in one process: drop --num-processes {plan.cfg.run.num_processes}",
    )
    plan = replace(plan, backend=backend[0], backend_reason=backend[1])
    check_processes(plan, processes)
    staged = config_for_stage(plan.cfg, generates, processes)
    plan = plan.with_config(staged)  # keeps the backend
    return settle(plan, processes, announce=announce)  # combinations: refused, or switched off


def default_run_dir(plan: RunPlan) -> Path:
    model = Path(plan.cfg.model.name).name.replace("/", "-") or "model"
    label = plan.label  # a user's task: its name, not its file path
    return Path("runs") / check_run_name(f"{label}-{model}-{datetime.now():%Y%m%d-%H%M%S}")


def run_dir_for(plan: RunPlan, default: Path | None = None) -> RunDir:
    """The run folder the plan's config names, checked against what it holds: a new run must not land on an old
    one, a resume needs a complete checkpoint (a foreign or busy folder is refused when the session claims it)."""
    cfg = plan.cfg
    path = Path(cfg.run.output_dir) if cfg.run.output_dir else default or default_run_dir(plan)
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
    plan: RunPlan,
    run: RunDir,
    backend: Any,
    memory: MemoryRequest = MemoryRequest(),
    *,
    rows: Callable[[RunPlan], list[dict]] | None = None,
    rollouts: bool = True,
    warnings: bool = True,
) -> Prepared:
    """Every check after the run folder is claimed and before ``backend.load``: the reward list, the task's rows
    (or ``rows``: the stage's own, SFT's traces), the model reference and its context, the memory
    plan (refused, shrunk or forced; ``rollouts=False``: one training step, module docstring), then
    :func:`check_loadable`. ``warnings``: log GRPO's start warnings.

    A backend that must import its library before trl (``imports_first``: Unsloth) gets a reward list that imports
    trl (shaping, a ``trl.rewards`` name) built and checked by the engine once it has loaded."""
    from lowvram_r1.memory.fit import fit_plan
    from lowvram_r1.rewards.user import needs_trl
    from lowvram_r1.rewards.weighted import reward_list

    cfg = plan.cfg
    if not (backend.imports_first and needs_trl(cfg.task)):
        reward_list(plan.task, cfg.task, cfg.generation.max_completion_length)  # --reward specs load, or say why
    tiny = plan.tiny  # a task the tiny model cannot be built for is refused here, before its data is fetched
    t = cfg.task  # the task's train rows and its held-out rows (none without an eval size), or the stage's own
    train_rows = plan.rows("train", t.train_size) if rows is None else rows(plan)
    eval_rows = plan.rows("test", t.eval_size) if rows is None and t.eval_size else []
    model_ref = None
    if tiny is None:  # the tiny model is built with a context that holds the lengths
        model_ref = plan.model_path()  # a wrong path or a hub id without network fails here
        check_context(plan, model_ref)
    else:
        check_tiny_built(plan)
        if cfg.model.load_in_4bit:
            logger.info("4-bit loading of the tiny model: fine for testing the QLoRA path, not faster")
    m = memory
    plan = fit_plan(plan, m.cuda_gb, m.gpu_memory, m.auto_fit, m.force, rollouts)  # refuse, shrink or go on
    prepared = Prepared(plan, train_rows, eval_rows, run, model_ref)
    check_loadable(prepared, backend, warnings=warnings)
    return prepared


def check_processes(plan: RunPlan, processes: int) -> None:
    """What a run of ``processes`` training processes (started by a launcher) cannot do with the plan's backend
    (``config_for_stage`` then records their real number; the tiny model's build: ``check_tiny_built``)."""
    n = plan.cfg.run.num_processes
    require(
        processes > 1 or n == 1,
        f"--num-processes {n} needs a launcher: start it with `lowvram-r1 train --num-processes {n} ...` (or "
        "`accelerate launch -m lowvram_r1.cli train ...`)",
    )
    require(
        processes == 1 or plan.backend != "unsloth",
        "the unsloth backend trains on one GPU (its vLLM engine shares that GPU's weights): pass --backend hf for "
        "several processes, or --num-processes 1",
    )


def check_tiny_built(plan: RunPlan) -> None:
    """Several training processes load the tiny model; they must not build it together (``config_for_stage`` has
    set ``num_processes`` to their number). ``lowvram-r1 train --num-processes N`` builds it before they start."""
    from lowvram_r1.models.tiny import tiny_model_is_built

    require(
        plan.cfg.run.num_processes == 1 or tiny_model_is_built(plan.tiny),
        "the tiny model for this run is not built yet, and several processes must not build it together: start "
        "the run with `lowvram-r1 train --num-processes N ...` (it builds the model first), or train it once "
        "with one process",
    )


def check_context(plan: RunPlan, model_path: str) -> None:
    """Prompt + completion (+ what the environment inserts) must fit the model's positions (read from config.json:
    no weights load)."""
    budget, context = plan.budget, context_length(model_path)
    inserted = budget.inserted  # search tasks: retrieved passages
    if context and budget.context > context:
        extra = f" + up to {inserted} retrieved tokens" if inserted else ""
        raise ValueError(
            f"max_prompt_length + max_completion_length{extra} = "
            f"{budget.context} exceeds the model's context of {context} "
            "tokens: lower --max-prompt-length or --max-completion-length"
            + (" (or the task options max_turns / top_k / max_passage_tokens)" if inserted else "")
        )


def check_loadable(prepared: Prepared, backend: Any, warnings: bool = True) -> None:
    """The last checks before loading: options this machine cannot run, the backend's own refusals (the unsloth
    backend imports Unsloth here, before anything else imports transformers), the longest prompt. ``warnings``:
    log GRPO's start warnings (``train.start_checks``; SFT has none of what they look at)."""
    plan = prepared.plan
    check_hardware_options(plan.cfg, plan.hardware)
    source = prepared.model_ref or plan.tokenizer_path()  # the tiny model: only its tokenizer so far (seconds)
    backend.check(plan, source)
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
