"""DeepSpeed ZeRO-2 and ZeRO-3 on CPU: the shipped accelerate files, with the one key that lets them run on CPU
processes changed (``use_cpu: true``), run `lowvram-r1 train --num-processes 2 --accelerate-config X` on the small
tiny model (DeepSpeed's CPU accelerator, gloo). Each trains the same adapter as plain DDP for the same seed, shards
its optimizer state (and for ZeRO-3 the weights) across the two processes, saves a whole adapter, and resumes.

    OMP_NUM_THREADS=1 pytest tests/e2e/test_deepspeed.py -m slow      # about 3 minutes on 2 cores
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.cli.launch import check_launch
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.reader import read_jsonl
from tests.e2e.test_multiprocess import ACCELERATE_CONFIGS, environment, evals, train_command
from tests.hardware import PROFILES
from tests.launch_output import why_it_failed
from tests.train.test_train import lora_b_norm, small_config

SHIPPED = {int(p.stem[-1]): p for p in ACCELERATE_CONFIGS if "zero" in p.stem}
EVAL_SIZE = 5  # not a multiple of the 2 processes: their shares are padded to one length (ZeRO-3 needs it)
needs_deepspeed = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed: make test installs it"
)


def cpu_copy(shipped: Path, folder: Path) -> Path:
    """``shipped`` with ``use_cpu: false`` turned into ``use_cpu: true``, nothing else changed."""
    text = shipped.read_text()
    assert text.count("use_cpu: false") == 1
    copy = folder / shipped.name
    copy.write_text(text.replace("use_cpu: false", "use_cpu: true"))
    return copy


def train(recipe: Path, *flags: str) -> None:
    done = subprocess.run(
        train_command(recipe, *flags), env=environment(), capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, why_it_failed(done.stderr)


def adapter(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def max_gap(a: dict, b: dict) -> float:
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def ddp_run(small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """Two plain DDP processes (torchrun, gloo), two steps, a checkpoint after each: what ZeRO must match."""
    folder = tmp_path_factory.mktemp("ddp")
    run = RunDir(folder / "run")
    recipe = folder / "recipe.yaml"
    config.save(
        small_config(small_model, run.path, num_processes=2, max_steps=2, save_steps=1, eval_size=EVAL_SIZE), recipe
    )
    train(recipe)
    return run


@pytest.mark.slow
@needs_deepspeed
@pytest.mark.parametrize("stage", sorted(SHIPPED))
def test_zero_trains_like_ddp_shards_its_state_and_resumes(
    stage: int, ddp_run: RunDir, small_model: Path, tmp_path: Path
) -> None:
    run = RunDir(tmp_path / "run")
    accelerate_config = cpu_copy(SHIPPED[stage], tmp_path)
    recipe = tmp_path / "recipe.yaml"
    cfg = small_config(
        small_model,
        run.path,
        num_processes=2,
        max_steps=2,
        save_steps=1,
        eval_size=EVAL_SIZE,
        accelerate_config=str(accelerate_config),
    )
    config.save(cfg, recipe)
    train(recipe)
    assert run.status()["state"] == "finished" and run.status()["processes"] == 2

    # Sharded: each process saved its own part of the optimizer state (ZeRO-3: of the weights too).
    shards = {p.name for p in (run.path / "checkpoints" / "checkpoint-2" / "global_step2").iterdir()}
    assert {f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)} <= shards
    assert ({f"zero_pp_rank_{r}_mp_rank_00_model_states.pt" for r in (0, 1)} <= shards) == (stage == 3)
    # The same training as DDP: after step 1 (sampled from the same untouched model) the adapters agree to float
    # noise; a wrong gradient reduction or a lost shard would move them by the learning rate (5e-3).
    gap = max_gap(
        adapter(run.path / "checkpoints" / "checkpoint-1"), adapter(ddp_run.path / "checkpoints" / "checkpoint-1")
    )
    assert gap < 1e-4, gap
    before = [evals(x)[0] for x in (run, ddp_run)]
    assert [e["n"] for e in before] == [EVAL_SIZE] * 2  # every held-out prompt scored once
    assert before[0] == before[1]  # the same greedy completions as DDP's, though ZeRO-3 generates from shards
    # A whole adapter at the end (ZeRO-3 gathers the sharded LoRA weights to save it), the checkpoint's own.
    final = adapter(run.adapter)
    assert max_gap(final, adapter(run.path / "checkpoints" / "checkpoint-2")) == 0.0
    assert lora_b_norm(run.adapter) > 0

    # Resume from the sharded checkpoint, one step further.
    train(recipe, "--resume", "--max-steps", "3")
    steps = [r["step"] for r in read_jsonl(run.metrics)[0] if r["kind"] == "train"]
    assert steps == [1, 2, 3] and run.status()["state"] == "finished"
    assert sorted({c["step"] for c in read_jsonl(run.completions)[0]}) == [1, 2, 3]
    assert (run.path / "checkpoints" / "checkpoint-3" / "global_step3").is_dir()


def test_gpu_accelerate_configs_are_refused_on_cpu_and_cpu_copies_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = PROFILES["none"]
    for shipped in ACCELERATE_CONFIGS:
        gpu_only = config.load(None, {"num_processes": 2, "accelerate_config": str(shipped)})
        with pytest.raises(ValueError, match="use_cpu: true"):
            check_launch(gpu_only, cpu)
    runnable = config.load(None, {"num_processes": 2, "accelerate_config": str(cpu_copy(SHIPPED[2], tmp_path))})
    if importlib.util.find_spec("deepspeed") is not None:
        check_launch(runnable, cpu)
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else found(name, *a))
    with pytest.raises(ValueError, match="pip install deepspeed"):  # as on a machine without it
        check_launch(runnable, cpu)
    broken = tmp_path / "broken.yaml"
    broken.write_text("distributed_type: NOT_A_TYPE\nuse_cpu: true\n")
    with pytest.raises(ValueError, match="accelerate cannot read it"):
        check_launch(config.load(None, {"num_processes": 2, "accelerate_config": str(broken)}), cpu)
