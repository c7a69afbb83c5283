"""``train(cfg)``: one GRPO run, top to bottom. The CLI, the panel and the notebook all end up here.

    from lowvram_r1 import config, engine
    summary = engine.train(config.load("configs/cpu-demo.yaml"))

Order matters and is the point of this file: everything that can be checked is checked before any weights
load (task, data, model reference, hardware options, TRL's own option checks); then the model loads, the
held-out split is measured, TRL's GRPOTrainer trains while the RunRecorder writes the run directory, the
held-out split is measured again, and the adapter is saved.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from lowvram_r1 import config as config_module
from lowvram_r1.config import RunConfig
from lowvram_r1.runs import RunDir, check_run_name, read_jsonl, summarize_run, truncate_after
from lowvram_r1.tasks import Split, Task, get_task
from lowvram_r1.tasks.base import PromptFormat

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """What validation produced: the task, its rows and the run directory."""

    cfg: RunConfig
    task: Task
    train_rows: list[dict]
    eval_rows: list[dict]
    run: RunDir


def default_run_dir(cfg: RunConfig) -> Path:
    model = Path(cfg.model.name).name.replace("/", "-") or "model"
    return Path("runs") / check_run_name(f"{cfg.task.name}-{model}-{datetime.now():%Y%m%d-%H%M%S}")


def tiny_spec(cfg: RunConfig) -> Any:
    """The built-in tiny model's spec for this run: its task settings, and a context that holds the run's lengths."""
    from lowvram_r1.models.tiny import context_for, spec_for

    t, g = cfg.task, cfg.generation
    context = context_for(g.max_prompt_length, g.max_completion_length)
    return spec_for(t.name, t.data_seed, dict(t.options), t.prompt_style, t.system_prompt, context=context)


def resolve_model_path(cfg: RunConfig) -> str:
    """A loadable model reference: the tiny model's folder (built on first use), a local folder or a hub id."""
    if cfg.model.name != "tiny":
        from lowvram_r1.models.loading import resolve_model

        return resolve_model(cfg)
    from lowvram_r1.models.tiny import ensure_tiny_model

    return str(ensure_tiny_model(tiny_spec(cfg)))


def tokenizer_path(cfg: RunConfig) -> str:
    """Where the tokenizer comes from: for the tiny model its tokenizer alone (seconds), so that lengths are
    checked before the model is built; else the model reference."""
    if cfg.model.name != "tiny":
        return resolve_model_path(cfg)
    from lowvram_r1.models.tiny import ensure_tiny_tokenizer

    return str(ensure_tiny_tokenizer(tiny_spec(cfg)))


def prepare(cfg: RunConfig) -> Prepared:
    """Every check that needs no weights: raises ``ValueError`` (exit code 2 in the CLI) with what to do."""
    from lowvram_r1.models.loading import resolve_model

    task = get_task(cfg.task.name)
    if cfg.model.name == "tiny":
        tiny_spec(cfg)  # a task the tiny model cannot be built for is refused before its data is fetched
    options = task.resolve_options(cfg.task.options)
    split = Split("train", cfg.task.train_size, cfg.task.data_seed, cfg.task.data_path, options)
    fmt = PromptFormat(cfg.task.prompt_style, cfg.task.system_prompt, cfg.task.assistant_prefill)
    train_rows = task.build_rows(split, fmt)
    eval_split = replace(split, split="test", size=cfg.task.eval_size)
    eval_rows = task.build_rows(eval_split, fmt) if cfg.task.eval_size else []
    if cfg.model.name != "tiny":  # the tiny model is built with a context that holds the lengths
        _check_context(cfg, resolve_model(cfg))  # a wrong path or a hub id without network fails here too
    if cfg.model.name == "tiny" and cfg.model.load_in_4bit:
        logger.info("4-bit loading of the tiny model: fine for testing the QLoRA path, not faster")
    run_path = Path(cfg.run.output_dir) if cfg.run.output_dir else default_run_dir(cfg)
    check_run_name(run_path.name)
    run = RunDir(run_path)
    if cfg.run.resume:
        if run.last_checkpoint() is None:
            raise ValueError(f"--resume: {run_path} has no complete checkpoint to resume from")
    elif run.config.exists():
        raise ValueError(f"{run_path} already holds a run: pass --resume to continue it, or another --output-dir")
    return Prepared(cfg, task, train_rows, eval_rows, run)


def _check_context(cfg: RunConfig, model_path: str) -> None:
    """Prompt + completion must fit the model's positions (read from config.json: no weights load)."""
    from lowvram_r1.models.loading import context_length

    g = cfg.generation
    context = context_length(model_path)
    if context and g.max_prompt_length + g.max_completion_length > context:
        raise ValueError(
            f"max_prompt_length + max_completion_length = {g.max_prompt_length + g.max_completion_length}"
            f" exceeds the model's context of {context} tokens: lower --max-prompt-length or "
            "--max-completion-length"
        )


def _check_prompt_lengths(prepared: Prepared, source: str, trust_remote_code: bool) -> None:
    """The longest prompt (of the first rows of each split) must fit max_prompt_length; tokenizer only."""
    from transformers import AutoTokenizer

    from lowvram_r1.evaluate import prompt_text

    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    g = prepared.cfg.generation
    texts = [prompt_text(tokenizer, r["prompt"]) for r in prepared.train_rows[:256] + prepared.eval_rows[:64]]
    longest = max(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    if longest > g.max_prompt_length:
        raise ValueError(
            f"a prompt has {longest} tokens, more than max_prompt_length {g.max_prompt_length}: "
            f"raise --max-prompt-length to at least {longest}"
        )


def train(
    cfg: RunConfig,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    *,
    gpu_memory: str | None = None,
    auto_fit: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Run GRPO as configured; returns the summary the CLI prints. Raises ``ValueError`` on bad input.

    The memory plan comes before any weights load (``vram_fit.fit_for_training``): a config that cannot fit the
    GPU (or ``gpu_memory``) is refused with the cheapest change that fits, shrunk with ``auto_fit``, or tried
    anyway with ``force``. ``callbacks``: extra transformers ``TrainerCallback``s (the GPU smoke test probes the
    trained model with one).
    """
    started = time.monotonic()
    prepared = prepare(cfg)
    task, run = prepared.task, prepared.run

    from lowvram_r1.models.loading import check_hardware_options, detect_hardware
    from lowvram_r1.vram_fit import fit_for_training

    hardware = detect_hardware()
    check_hardware_options(cfg, hardware)
    cfg = fit_for_training(cfg, hardware.memory_gb if hardware.cuda else None, gpu_memory, auto_fit, force)
    prepared = replace(prepared, cfg=cfg)
    from lowvram_r1.models.unsloth_backend import (
        check_unsloth_options,
        held_out_generator,
        import_unsloth,
        load_unsloth,
        resolve_backend,
    )

    backend, reason = resolve_backend(cfg, hardware.cuda)
    logger.info("backend: %s (%s)", backend, reason)
    source = tokenizer_path(cfg)  # the tiny model: only its tokenizer so far (seconds)
    from lowvram_r1.rollout import check_vllm_quantization

    check_vllm_quantization(cfg, source)  # 4-bit + vLLM without vllm-bnb-plugin: refused before loading
    if backend == "unsloth":  # before anything below imports transformers/trl/peft: unsloth must patch them first
        check_unsloth_options(cfg)
        import_unsloth(cfg.model.unsloth_standby, hardware=hardware)
    _check_prompt_lengths(prepared, source, cfg.model.trust_remote_code)
    model_path = resolve_model_path(cfg)  # the tiny model is built here (minutes, once), after every check
    from lowvram_r1.models.cpu_logprob import install as install_cpu_logprob
    from lowvram_r1.models.loading import load_hf, lora_config, mixed_precision

    install_cpu_logprob()
    grpo_args = config_module.to_grpo_config(
        cfg, run.checkpoints, **mixed_precision(cfg, hardware), use_cpu=not hardware.cuda
    )
    if backend == "unsloth":
        rollout_func = None  # Unsloth's patched GRPOTrainer drives its own colocated vLLM (fast_inference)
        model, tokenizer = load_unsloth(cfg, model_path)
    else:
        from lowvram_r1.rollout import make_rollout

        rollout_func = make_rollout(cfg, model_path, hardware)  # vLLM with LoRA hot-swap, or None: TRL's generate
        model, tokenizer = load_hf(cfg, model_path, hardware)

    run.path.mkdir(parents=True, exist_ok=True)
    resume_from = run.last_checkpoint() if cfg.run.resume else None
    resume_step = int(resume_from.name.split("-")[-1]) if resume_from else 0
    if resume_from is not None:
        dropped = truncate_after(run.metrics, resume_step) + truncate_after(run.completions, resume_step)
        logger.info("resuming from %s (dropped %d records written after it)", resume_from, dropped)
    config_module.save(cfg, run.config)
    run.write_status(
        state="running",
        pid=os.getpid(),
        started=time.time(),
        task=task.name,
        model=cfg.model.name,
        max_steps=cfg.training.max_steps,
        error=None,
    )
    if run.stop_file.exists():
        run.stop_file.unlink()

    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    from lowvram_r1.evaluate import evaluate
    from lowvram_r1.recorder import RunRecorder
    from lowvram_r1.rewards.monitor import CheckReward, reflection_reward

    def held_out(current_model: Any) -> dict[str, Any]:
        g = cfg.generation
        rows = prepared.eval_rows
        if backend == "unsloth":  # Unsloth's own colocated vLLM engine, when it started one
            generator = held_out_generator(trainer.model, tokenizer)
        else:  # ours (vLLM with LoRA hot-swap), when training uses it
            generator = rollout_func.generator(trainer) if rollout_func is not None else None
        return evaluate(current_model, tokenizer, task, rows, g.max_completion_length, g.eval_temperature,
                        g.eval_samples, generator=generator)

    weights = list(cfg.task.reward_weights) if cfg.task.reward_weights is not None else list(task.reward_weights)
    reward_funcs = [*task.reward_funcs, CheckReward(task.name), reflection_reward]
    recorder = RunRecorder(run, held_out if prepared.eval_rows else None, cfg.training.eval_steps, progress)
    grpo_args.reward_weights = [*weights, 0.0, 0.0]  # the monitors are logged, never optimised
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=grpo_args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_list(prepared.train_rows),
        peft_config=lora_config(cfg) if backend == "hf" else None,  # Unsloth's model has its adapter already
        callbacks=[recorder, *callbacks],
        rollout_func=rollout_func,
    )
    recorder.attach(trainer)
    trainer.remove_callback(PrinterCallback)  # the recorder reports; transformers would print raw log dicts
    recorder.install_signal_handler()
    try:
        measured = {r["step"] for r in read_jsonl(run.metrics)[0] if r.get("kind") == "eval"}  # on resume
        if prepared.eval_rows and 0 not in measured:
            recorder.record_eval(0, held_out(trainer.model))
        train_started = time.monotonic()
        if resume_from is not None and resume_step >= cfg.training.max_steps:
            # Nothing left to train (killed after its last checkpoint). transformers would still take one more
            # step when resumed at max_steps, so load the checkpoint's adapter instead of calling train().
            _load_adapter_weights(trainer.model, resume_from)
            final_step = resume_step
        else:
            trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
            final_step = trainer.state.global_step
        train_seconds = time.monotonic() - train_started
        if prepared.eval_rows and final_step not in measured:
            recorder.record_eval(final_step, held_out(trainer.model))
        trainer.model.save_pretrained(run.adapter)
        tokenizer.save_pretrained(run.adapter)
        state = "stopped" if recorder.stop_requested and final_step < cfg.training.max_steps else "finished"
        run.write_status(state=state, step=final_step, finished=time.time())
    except BaseException as error:
        run.write_status(
            state="stopped" if isinstance(error, KeyboardInterrupt) else "failed",
            error=f"{type(error).__name__}: {error}",
            traceback=traceback.format_exc()[-4000:],
        )
        raise
    return {**summarize_run(run, time.monotonic() - started), "train_seconds": train_seconds}


def _load_adapter_weights(model: Any, checkpoint: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(checkpoint / "adapter_model.safetensors")))
