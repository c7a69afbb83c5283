"""``lowvram-r1 train --num-processes N``: the same command, re-run as N training processes by a launcher.

    lowvram-r1 train --config cpu-demo --num-processes 2                        # CPU: torchrun, gloo
    lowvram-r1 train --config X --num-processes 4                               # GPUs: accelerate launch --multi_gpu
    lowvram-r1 train --config X --num-processes 4 --accelerate-config deepspeed-zero2   # a shipped config, or a file

This process checks what it can (the config, the run folder, the GPUs, the backend, the accelerate config and
DeepSpeed), builds the tiny model when the run uses it (several processes must not build it together), then
replaces itself (``exec``) with the launcher: ``accelerate launch`` on GPUs and for any ``--accelerate-config``,
torch's own ``torchrun`` (``torch.distributed.run --standalone``) on CPU without one, where ``accelerate launch
--cpu`` would start one process without MPI. Either runs inside :mod:`.loopback_launch`, so that the launcher's
unauthenticated c10d stores (and, without an accelerate config, gloo) listen on 127.0.0.1 only. An accelerate
config runs on CPU processes only if it says ``use_cpu: true`` (the tests run the shipped DeepSpeed files that way,
with that one key changed). Each launched process runs ``python -m lowvram_r1.cli train ...`` with the same flags
and sees the launcher's variables, so it trains instead of launching again. The launcher keeps this process's pid:
kill -9 of it ends every worker (they ask Linux for that).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lowvram_r1.cli.loopback_launch import GLOO_LOOPBACK, LOOPBACK
from lowvram_r1.config import RunConfig
from lowvram_r1.models.hardware import Hardware
from lowvram_r1.recipes import accelerate_config_path, accelerate_configs
from lowvram_r1.run_plan import RunPlan

logger = logging.getLogger(__name__)


def launcher_command(
    processes: int, hardware: Hardware, accelerate_config: str | None, train_argv: Sequence[str]
) -> list[str]:
    """The launcher's command line for ``processes`` copies of ``lowvram-r1 <train_argv>`` on this hardware."""
    program = ["-m", "lowvram_r1.cli", *train_argv]
    # through loopback_launch: the launcher's stores (and, on one machine, gloo) listen on 127.0.0.1 only
    wrapper = [sys.executable, "-m", "lowvram_r1.cli.loopback_launch", *([] if accelerate_config else [GLOO_LOOPBACK])]
    if hardware.cuda or accelerate_config:
        launch = [*wrapper, "accelerate.commands.launch", "--num_processes", str(processes)]
        shipped = str(accelerate_config_path(accelerate_config)) if accelerate_config else None
        launch += ["--config_file", shipped] if shipped else ["--multi_gpu"]
        return [*launch, *program]
    torchrun = ["torch.distributed.run", "--standalone", f"--local-addr={LOOPBACK}", f"--nproc-per-node={processes}"]
    return [*wrapper, *torchrun, *program]


def processes_plan(hardware: Hardware) -> list[str]:
    """What ``train`` does with this machine's GPUs, as ``doctor`` says it (a pure function of the description)."""
    if not hardware.cuda:
        return [
            "gpus: 0 — train runs one process on the CPU",
            "  --num-processes N: N CPU processes (torchrun, gloo), to try several processes, not for speed",
        ]
    n = hardware.gpu_count
    if n <= 1:
        return [f"gpus: {n} — train runs one process on it (the recipe for its memory tier)"]
    return [
        f"gpus: {n} — train uses one of them unless asked for more: --num-processes {n} --backend hf runs {n} "
        "processes under accelerate launch (DDP, the memory plan per GPU, --batch-size per process)",
        "  ZeRO: --accelerate-config deepspeed-zero2 (or -zero3: optimizer state, gradients "
        "and weights sharded once training starts, but each GPU loads the whole model first; needs pip install "
        "deepspeed); the unsloth backend trains on one GPU",
    ]


def check_launch(cfg: RunConfig, hardware: Hardware) -> None:
    """What this machine cannot launch, said before anything starts (``ValueError``: exit code 2)."""
    n = cfg.run.num_processes
    if hardware.cuda and n > hardware.gpu_count:
        raise ValueError(
            f"--num-processes {n} needs {n} GPUs, and this machine has {hardware.gpu_count}: pass "
            f"--num-processes {hardware.gpu_count}"
        )
    if cfg.run.accelerate_config is not None:
        check_accelerate_config(Path(cfg.run.accelerate_config), hardware)


def check_accelerate_config(path: Path, hardware: Hardware) -> None:
    """The file (or shipped config name) is one accelerate can launch here (``ValueError`` naming the fix)."""
    given, path = path, accelerate_config_path(path)
    if not path.is_file():
        shipped = ", ".join(accelerate_configs())
        raise ValueError(f"--accelerate-config {given} does not exist: give a file or a shipped config ({shipped})")
    from accelerate.commands.config.config_args import load_config_from_file

    try:
        loaded = load_config_from_file(str(path))  # accelerate's own loader: unknown keys and bad values raise
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"--accelerate-config {path}: accelerate cannot read it ({error})") from None
    if not hardware.cuda and not loaded.use_cpu:
        raise ValueError(
            f"--accelerate-config {path} is for GPUs (use_cpu: false) and this machine has none: drop it (CPU "
            "processes use gloo), or run a copy that says use_cpu: true"
        )
    deepspeed = loaded.distributed_type.value == "DEEPSPEED"
    if deepspeed and importlib.util.find_spec("deepspeed") is None:
        raise ValueError(f"--accelerate-config {path} uses DeepSpeed, which is not installed: pip install deepspeed")


def relaunch(plan: RunPlan, argv: Sequence[str]) -> int:
    """Check, prepare, then ``exec`` the launcher (returns only in tests that replace :func:`os.execv`)."""
    from lowvram_r1.runs.lifecycle import trainer_pid
    from lowvram_r1.train.prepare import run_dir_for, settle_stage

    n = plan.cfg.run.num_processes
    check_launch(plan.cfg, plan.hardware)
    plan = settle_stage(plan, n, announce=False)  # what the processes cannot do: refused here, before any starts
    run = run_dir_for(plan)  # a new folder, or one to resume: refused here rather than in every process
    holder = trainer_pid(run)
    if holder is not None:
        raise ValueError(f"{run.path} is being trained by another process (pid {holder}): stop it first")
    if plan.tiny is not None:
        logger.info("the tiny model: built (or found in the cache) before the processes start")
        plan.model_path()
    cfg, hardware = plan.cfg, plan.hardware
    command = launcher_command(
        cfg.run.num_processes, hardware, cfg.run.accelerate_config, [*argv, "--output-dir", str(run.path)]
    )
    logger.info("%d processes: %s", cfg.run.num_processes, " ".join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
    return 0  # unreachable: exec replaced this process
