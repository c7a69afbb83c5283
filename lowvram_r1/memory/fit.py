"""Auto-fit: shrink a config until its planned peak fits a GPU, keeping as many rollout tokens per step as possible.

    cfg = shrink_to_fit(plan, 8)                 # what `--auto-fit` does
    check_fits(plan, gpu_memory_gb=8)       # refuses with the cheapest change that fits
    fit_for_training(plan, 7.6, ...)        # what `train` does first (detected GPU, --gpu-memory, --auto-fit, --force)
    plan = fit_plan(plan, 7.6, ...)         # the same for the stage runner: the plan, or its fitted variant

``plan`` is the run's :class:`~lowvram_r1.run_plan.RunPlan` (a bare config is resolved); each candidate config is
planned against the run's plan (``planner.memory_plan(plan, cfg=candidate)``): the same task, no new look-up.

Knobs, each only ever lowered from the config's value: gradient checkpointing (switched on, then offloaded to CPU
RAM: tried before anything the run learns from is cut, as rollout tokens outrank speed), micro-batch size
(traded against gradient accumulation, which keeps the rollout batch), completion length, rollout batch, group
size, LoRA rank, and vLLM's memory share (set to what is left after training). Candidates are ranked by rollout
tokens per step (completions x completion length), then group size, LoRA rank and micro-batch (speed).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging

from lowvram_r1.config import CHECKPOINTING, RunConfig
from lowvram_r1.memory.planner import PHASES, GiB, memory_plan, parse_gb
from lowvram_r1.run_plan import RunPlan, plan_of

logger = logging.getLogger(__name__)
MIN_COMPLETION = 64
MIN_RANK = 4


def _halvings(value: int, floor: int) -> list[int]:
    values = [value]
    while values[-1] // 2 >= floor:
        values.append(values[-1] // 2)
    return values


def _with(cfg: RunConfig, **changes: dict) -> RunConfig:
    return dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s), **v) for s, v in changes.items()})


def _vllm_share(run: RunPlan, cfg: RunConfig, budget: float) -> RunConfig | None:
    """Give vLLM what training leaves (rounded down to 0.01), if that is at least what vLLM needs to start."""
    if not cfg.generation.use_vllm:
        return cfg
    training = memory_plan(run, None, cfg=cfg)  # budget-less plan: vLLM at its minimum
    vllm = sum(c.bytes for c in training.components if c.name.startswith("vLLM")) / GiB
    left = budget - (training.total_gb - vllm)
    share = int(100 * left / budget) / 100
    if share * budget < vllm or share <= 0:
        return None
    return _with(cfg, generation={"vllm_gpu_memory_utilization": min(share, 0.95)})


def candidates(cfg: RunConfig) -> list[RunConfig]:
    t, g = cfg.training, cfg.generation
    rollout = t.per_device_train_batch_size * t.gradient_accumulation_steps
    found = []
    for ckpt, completion, groups_batch, gen, rank in itertools.product(
        CHECKPOINTING[CHECKPOINTING.index(cfg.model.gradient_checkpointing) :],  # the config's, then on, offloaded
        _halvings(g.max_completion_length, min(MIN_COMPLETION, g.max_completion_length)),
        _halvings(rollout, 2),
        _halvings(t.num_generations, 2),
        _halvings(cfg.lora.r, min(MIN_RANK, cfg.lora.r)),
    ):
        if groups_batch % gen:
            continue
        for micro in (d for d in range(groups_batch, 0, -1) if groups_batch % d == 0):
            found.append(
                _with(
                    cfg,
                    model={"gradient_checkpointing": ckpt},
                    lora={"r": rank, "alpha": max(1, round(cfg.lora.alpha * rank / cfg.lora.r))},
                    training={
                        "num_generations": gen,
                        "per_device_train_batch_size": micro,
                        "gradient_accumulation_steps": groups_batch // micro,
                    },
                    generation={"max_completion_length": completion},
                )
            )
    return found


def _score(cfg: RunConfig) -> tuple:
    t = cfg.training
    rollout = t.per_device_train_batch_size * t.gradient_accumulation_steps
    return (
        rollout * cfg.generation.max_completion_length,
        t.num_generations,
        cfg.lora.r,
        t.per_device_train_batch_size,
        -CHECKPOINTING.index(cfg.model.gradient_checkpointing),
    )  # off is fastest


def shrink_to_fit(run: RunPlan | RunConfig, gpu_memory_gb: float) -> RunConfig:
    """The config with the most rollout tokens per step that fits ``gpu_memory_gb`` (the best-scoring candidate
    whose plan fits); ValueError with what to do when none does."""
    return _shrink(plan_of(run), gpu_memory_gb)


def _shrink(run: RunPlan, gpu_memory_gb: float) -> RunConfig:
    cfg, best = run.cfg, None
    for candidate in sorted(candidates(cfg), key=_score, reverse=True):
        shared = _vllm_share(run, candidate, gpu_memory_gb)
        if shared is not None and memory_plan(run, gpu_memory_gb, cfg=shared).fits:
            best = shared
            break
    if best is None:
        plans = (memory_plan(run, gpu_memory_gb, cfg=c) for c in candidates(cfg))
        smallest = min(plans, key=lambda p: p.total_bytes)
        raise ValueError(
            f"{cfg.model.name} does not fit {gpu_memory_gb:g} GB even with batch 1, {MIN_COMPLETION}-token "
            f"completions and offloaded checkpointing ({smallest.total_gb:.1f} GB planned): use --load-in-4bit, a "
            "smaller model, shorter --max-prompt-length, or a bigger GPU"
        )
    return RunConfig(**{f.name: getattr(best, f.name) for f in dataclasses.fields(best)})  # re-run validation


def changes(old: RunConfig, new: RunConfig) -> list[str]:
    """The flags that turn ``old`` into ``new``, e.g. ``['--batch-size 4', '--gradient-accumulation-steps 2']``."""
    from lowvram_r1.config import all_fields, flag_name

    flags = []
    for section, f in all_fields():
        before, after = getattr(getattr(old, section), f.name), getattr(getattr(new, section), f.name)
        if before != after:
            flags.append(f"--{flag_name(section, f)} {str(after).lower() if isinstance(after, bool) else after}")
    return flags


def check_fits(run: RunPlan | RunConfig, gpu_memory_gb: float, rollouts: bool = True) -> None:
    """Refuse a run whose plan exceeds the GPU, naming the cheapest change that makes it fit. ``rollouts=False``
    (a stage that generates nothing: SFT): the peak of one training step, without the rollout phase."""
    _check(plan_of(run), gpu_memory_gb, rollouts)


def _check(run: RunPlan, gpu_memory_gb: float, rollouts: bool) -> None:
    cfg = run.cfg
    planned = memory_plan(run, gpu_memory_gb)
    peak_gb = planned.peak_bytes(PHASES if rollouts else PHASES[:3]) / GiB
    if peak_gb <= gpu_memory_gb:
        logger.info("memory plan: %.2f GB of %.1f GB", peak_gb, gpu_memory_gb)
        return
    if not rollouts:  # no rollouts to shrink: the knobs of one training step
        raise ValueError(
            f"planned peak {peak_gb:.1f} GB of one training step exceeds the GPU's {gpu_memory_gb:.1f} GB "
            "(`lowvram-r1 plan` shows the components): lower --batch-size (more --gradient-accumulation-steps keep "
            "the batch), --gradient-checkpointing offload, --load-in-4bit, a lower --lora-r, or shorter "
            "--max-prompt-length / --max-completion-length; or pass --force to try anyway"
        )
    fitted = _shrink(run, gpu_memory_gb)
    raise ValueError(
        f"planned peak {planned.total_gb:.1f} GB exceeds the GPU's {gpu_memory_gb:.1f} GB "
        f"(`lowvram-r1 plan` shows why): the cheapest change that fits is {' '.join(changes(cfg, fitted))} "
        f"({memory_plan(run, gpu_memory_gb, cfg=fitted).total_gb:.1f} GB); or pass --auto-fit to apply it, "
        "--force to try anyway"
    )


def fit_for_training(
    run: RunPlan | RunConfig,
    cuda_memory_gb: float | None,
    gpu_memory: str | None = None,
    auto_fit: bool = False,
    force: bool = False,
    rollouts: bool = True,
) -> RunConfig:
    """What ``train`` does before anything loads: plan for the GPU, then refuse, shrink, or go on.

    ``cuda_memory_gb`` is the detected GPU (None without CUDA). Without a GPU the GPU check does not apply:
    the plan is logged for the CPU (RAM) and nothing is refused, unless ``--gpu-memory`` asks for a GPU budget.
    ``rollouts=False``: a stage that generates nothing (SFT) is planned as one training step, and not auto-fitted
    (auto-fit trades rollouts, group size and completion length, which SFT does not have or must not cut).
    """
    return fit_plan(plan_of(run), cuda_memory_gb, gpu_memory, auto_fit, force, rollouts).cfg


def fit_plan(
    run: RunPlan,
    cuda_memory_gb: float | None,
    gpu_memory: str | None = None,
    auto_fit: bool = False,
    force: bool = False,
    rollouts: bool = True,
) -> RunPlan:
    """:func:`fit_for_training` of a resolved run (the stage runner's): the plan itself, or its fitted variant."""
    if auto_fit and not rollouts:
        raise ValueError("--auto-fit shrinks GRPO's rollouts; this stage has none: drop --auto-fit")
    cfg = run.cfg
    budget = parse_gb(gpu_memory) if gpu_memory else cuda_memory_gb
    if budget is None:
        if auto_fit:
            raise ValueError("--auto-fit needs a GPU budget: no CUDA GPU found, pass --gpu-memory 8GB to plan for one")
        try:
            logger.info("no CUDA GPU: planned peak RAM %.2f GB", memory_plan(run, device="cpu").total_gb)
        except ValueError as error:  # a model outside the table on CPU: nothing to check anyway
            logger.info("no memory plan: %s", error)
        return run
    try:
        run.architecture()
    except ValueError as error:
        if auto_fit:
            raise
        logger.warning("memory check skipped: %s", error)
        return run
    if auto_fit:
        fitted = _shrink(run, budget)
        logger.info("auto-fit for %.1f GB: %s", budget, " ".join(changes(cfg, fitted)) or "no change needed")
        return run.with_config(fitted)
    if force:
        planned_gb = memory_plan(run, budget).peak_bytes(PHASES if rollouts else PHASES[:3]) / GiB
        if planned_gb > budget:
            logger.warning("--force: planned %.1f GB exceeds %.1f GB; training anyway", planned_gb, budget)
        return run
    _check(run, budget, rollouts)
    return run
