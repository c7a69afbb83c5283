"""Several training processes: `lowvram-r1 train --num-processes 2` on CPU (torchrun, gloo) with the small tiny
model proves that two processes trained and that the main one alone wrote the run directory; a kill -9 of the
launcher followed by `--resume` loses no step; the launch decisions and the shipped accelerate configs are checked
without starting anything."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.cli import main
from lowvram_r1.cli.launch import check_launch, launcher_command
from lowvram_r1.recipes import PACKAGE_RECIPES
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.lifecycle import trainer_pid
from lowvram_r1.runs.reader import read_jsonl
from tests.hardware import PROFILES
from tests.launch_output import diagnostic_environment, why_it_failed
from tests.train.test_train import lora_b_norm, small_config

ACCELERATE_CONFIGS = sorted((PACKAGE_RECIPES / "accelerate").glob("*.yaml"))
BATCH = 8  # completions per process per step (SMALL's --batch-size)
GLOBAL_BATCH = 16  # completions per step, over all processes, in the one-versus-two comparison
STEPS_TO_LEARN = 30  # at lr 1e-3 the small model's greedy format rate goes 0.44 -> 1.0 in 30 steps (seeds 1-9,
# one and two processes, all 18 runs)


def train_command(recipe: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "lowvram_r1.cli", "train", "--config", str(recipe), "--no-progress", *flags]


def environment() -> dict[str, str]:
    return diagnostic_environment()


def saved_recipe(small_model: Path, run: RunDir, tmp_path: Path, **overrides: object) -> Path:
    recipe = tmp_path / f"{run.name}-full.yaml"
    config.save(small_config(small_model, run.path, num_processes=2, **overrides), recipe)
    return recipe


def workers(launcher: int) -> list[int]:
    """The pids of the processes ``launcher`` started (Linux's /proc)."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def alive(pid: int) -> bool:
    """Is ``pid`` a live process (a zombie waiting for its reaper is not)?"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
def test_two_processes_train_and_the_main_one_records_each_step_once(small_model: Path, tmp_path: Path) -> None:
    run = RunDir(tmp_path / "runs" / "two")
    recipe = saved_recipe(small_model, run, tmp_path, max_steps=3, eval_size=6)
    done = subprocess.run(train_command(recipe), env=environment(), capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, why_it_failed(done.stderr)

    status = run.status()
    assert status["state"] == "finished" and status["step"] == 3 and status["processes"] == 2
    assert config.load(run.config).run.num_processes == 2  # what a --resume relaunches
    records, _ = read_jsonl(run.metrics)
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 3] and all(r["n"] == 6 for r in evals)  # each once, on every row
    completions, _ = read_jsonl(run.completions)
    assert len(completions) == 3 * 2 * BATCH  # both processes' completions, every step, once
    for step in (1, 2, 3):
        assert sorted(r["process"] for r in completions if r["step"] == step) == [0] * BATCH + [1] * BATCH
    assert (run.adapter / "adapter_model.safetensors").is_file()
    checkpoint = run.last_checkpoint()
    assert checkpoint is not None  # marked complete once both processes wrote their RNG state into it
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert trainer_pid(run) is None  # every process is gone, the lock with them


def prompts_by_step(run: RunDir) -> dict[int, Counter]:
    """How many completions each prompt got at each step."""
    steps: dict[int, Counter] = defaultdict(Counter)
    for record in read_jsonl(run.completions)[0]:
        steps[record["step"]][record["prompt"]] += 1
    return dict(steps)


def evals(run: RunDir) -> list[dict]:
    """The held-out evaluations, without their timings."""
    timing = {"time", "seconds"}
    return [{k: v for k, v in r.items() if k not in timing} for r in read_jsonl(run.metrics)[0] if r["kind"] == "eval"]


def rates_agree(a: float, b: float, n: int, sigmas: float) -> bool:
    """Could two rates out of ``n`` Bernoulli trials each differ by this much through sampling alone (``sigmas``
    standard errors of their difference, plus one trial for the discreteness)?"""
    pooled = (a + b) / 2
    return abs(a - b) <= sigmas * math.sqrt(2 * pooled * (1 - pooled) / n) + 1 / n


def check_same_global_batch_trains_alike(one: RunDir, two: RunDir, steps: int) -> None:
    """One process at the global batch versus two at half of it each, same seed and recipe."""
    # The same data: at every step the same prompts, each in one whole group (TRL's sampler shares one seed).
    assert prompts_by_step(one) == prompts_by_step(two)
    assert sorted(prompts_by_step(two)) == list(range(1, steps + 1))
    assert {sum(c.values()) for c in prompts_by_step(two).values()} == {GLOBAL_BATCH}
    # The same model before training: the step-0 evaluations agree exactly, though two processes split the
    # held-out prompts between them (greedy decoding; LoRA B starts at zero).
    before, after = zip(evals(one), evals(two), strict=True)
    assert before[0] == before[1] and before[0]["step"] == 0
    # The same result within noise: both learned the format (so this compares trained models, not two
    # untouched ones), the held-out rates agree within binomial noise and so does the training reward.
    n = int(before[0]["n"])
    for result in after:
        assert result["step"] == steps and result["format_rate"] >= before[0]["format_rate"] + 0.25, result
    for key in ("format_rate", "accuracy"):
        assert rates_agree(after[0][key], after[1][key], n, sigmas=3), (key, after)
    trained = [[c["rewards"]["format_reward"] for c in read_jsonl(r.completions)[0]] for r in (one, two)]
    rates = [sum(values) / len(values) for values in trained]
    assert rates_agree(*rates, len(trained[0]), sigmas=5), rates  # seeds 1-9 differed by at most 4.3 errors
    # The same step size: Adam's update scales with the learning rate, not with the gradient, so a wrong effective
    # rate shows in the adapter's size even when the held-out rate has saturated (seeds 1-9: LoRA-B sums 151-210;
    # lr x0.1 gives 24, lr x5 736)
    sizes = sorted(lora_b_norm(r.adapter) for r in (one, two))
    assert sizes[1] / sizes[0] < 1.6, sizes


@pytest.mark.slow
def test_two_processes_at_the_same_global_batch_train_like_one(small_model: Path, tmp_path: Path) -> None:
    runs = []
    for processes in (1, 2):
        run = RunDir(tmp_path / f"processes-{processes}")
        recipe = tmp_path / f"processes-{processes}.yaml"
        overrides = {"batch-size": GLOBAL_BATCH // processes, "learning_rate": 1e-3, "save_steps": STEPS_TO_LEARN}
        cfg = small_config(small_model, run.path, num_processes=processes, max_steps=STEPS_TO_LEARN, **overrides)
        config.save(cfg, recipe)
        done = subprocess.run(train_command(recipe), env=environment(), capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, why_it_failed(done.stderr)
        assert run.status()["processes"] == processes
        runs.append(run)
    check_same_global_batch_trains_alike(*runs, STEPS_TO_LEARN)


@pytest.mark.slow
def test_kill_9_of_the_launcher_then_resume_loses_no_step(small_model: Path, tmp_path: Path) -> None:
    run = RunDir(tmp_path / "killed")
    max_steps = 5
    recipe = saved_recipe(small_model, run, tmp_path, max_steps=max_steps, eval_size=0)
    launcher = subprocess.Popen(
        train_command(recipe), env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 1200  # a generous bound, not a measurement
    while run.last_checkpoint() is None and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(random.uniform(0.0, 1.5))  # kill at an arbitrary moment after the first checkpoint
    started = workers(launcher.pid)
    launcher.send_signal(signal.SIGKILL)  # `lowvram-r1 train` became the launcher (exec): this kills it alone
    launcher.wait()
    assert run.last_checkpoint() is not None, "the run died before its first checkpoint"
    while (trainer_pid(run) or any(map(alive, started))) and time.monotonic() < deadline:  # they follow it
        time.sleep(0.2)
    assert trainer_pid(run) is None and not any(map(alive, started)), "a worker outlived its killed launcher"

    resumed = subprocess.run(
        [*train_command(recipe), "--resume"], env=environment(), capture_output=True, text=True, timeout=1800
    )
    assert resumed.returncode == 0, why_it_failed(resumed.stderr)
    assert [r["step"] for r in read_jsonl(run.metrics)[0] if r["kind"] == "train"] == list(range(1, max_steps + 1))
    completions, _ = read_jsonl(run.completions)
    assert sorted({r["step"] for r in completions}) == list(range(1, max_steps + 1))
    assert len(completions) == max_steps * 2 * BATCH
    assert run.status()["state"] == "finished" and run.status()["processes"] == 2


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the workers' pids from /proc")
@pytest.mark.parametrize("how", ["sigterm-to-a-worker", "sigterm-to-the-launcher", "stop-file"])
def test_a_stop_request_stops_both_at_the_same_step(how: str, small_model: Path, tmp_path: Path) -> None:
    run = RunDir(tmp_path / "stopped")
    recipe = saved_recipe(small_model, run, tmp_path, max_steps=200, eval_size=0, save_steps=100)
    launcher = subprocess.Popen(
        train_command(recipe), env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 1200  # a generous bound, not a measurement
    while not read_jsonl(run.metrics)[0] and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    main_worker = trainer_pid(run)
    others = [pid for pid in workers(launcher.pid) if pid != main_worker]
    assert main_worker and len(others) == 1, (main_worker, others)
    if how == "sigterm-to-a-worker":
        os.kill(others[0], signal.SIGTERM)  # the main process never sees this signal: it learns it from the other
    elif how == "sigterm-to-the-launcher":
        launcher.send_signal(signal.SIGTERM)  # torchrun passes it on to both workers
    else:
        run.stop_file.write_text("stop requested by the test\n")  # what the panel and the notebook write
    _, stderr = launcher.communicate(timeout=1200)
    if how == "sigterm-to-the-launcher":  # torchrun waits for its workers (30 s at most), then re-raises the signal
        assert launcher.returncode == 1 and "SignalException" in stderr, why_it_failed(stderr)
    else:
        assert launcher.returncode == 0, why_it_failed(stderr)

    status = run.status()
    steps = [r["step"] for r in read_jsonl(run.metrics)[0] if r["kind"] == "train"]
    assert status["state"] == "stopped" and status["step"] == steps[-1] < 200
    assert steps == list(range(1, steps[-1] + 1))
    assert run.last_checkpoint() is not None and run.last_checkpoint().name == f"checkpoint-{steps[-1]}"
    assert trainer_pid(run) is None


def test_the_launcher_is_torchrun_on_cpu_and_accelerate_on_gpus() -> None:
    cpu = launcher_command(2, PROFILES["none"], None, ["train", "--task", "countdown"])
    assert cpu[3:6] == ["--gloo-loopback", "torch.distributed.run", "--standalone"] and "--nproc-per-node=2" in cpu
    assert cpu[-5:] == ["-m", "lowvram_r1.cli", "train", "--task", "countdown"]
    cpu_zero = launcher_command(2, PROFILES["none"], "zero2-cpu.yaml", ["train"])  # a config says use_cpu: true
    assert cpu_zero[3:8] == [
        "accelerate.commands.launch",
        "--num_processes",
        "2",
        "--config_file",
        "zero2-cpu.yaml",
    ]
    gpus = launcher_command(4, PROFILES["h100"], "ddp", ["train"])  # a shipped config by name
    assert gpus[3:6] == ["accelerate.commands.launch", "--num_processes", "4"]
    assert gpus[6:8] == ["--config_file", str(PACKAGE_RECIPES / "accelerate" / "ddp.yaml")]
    assert "--multi_gpu" in launcher_command(2, PROFILES["h100"], None, ["train"])


def test_launch_refusals_name_the_fix(tmp_path: Path) -> None:
    eight = replace(PROFILES["h100"], gpu_count=8)
    cfg = config.load(None, {"num_processes": 4})
    with pytest.raises(ValueError, match="--num-processes 1"):
        check_launch(cfg, PROFILES["t4"])  # one T4
    check_launch(cfg, eight)
    missing = config.load(None, {"num_processes": 2, "accelerate_config": str(tmp_path / "x.yaml")})
    with pytest.raises(ValueError, match="does not exist"):
        check_launch(missing, eight)
    shipped = config.load(None, {"num_processes": 2, "accelerate_config": str(ACCELERATE_CONFIGS[0])})
    with pytest.raises(ValueError, match="for GPUs"):
        check_launch(shipped, PROFILES["none"])
    # without a launcher, an engine asked for several processes refuses (the CLI is what launches them)
    from lowvram_r1.run_plan import resolve
    from lowvram_r1.train.prepare import check_processes

    with pytest.raises(ValueError, match="needs a launcher"):
        check_processes(resolve(cfg, PROFILES["none"], backend=("hf", "")), 1)
    unsloth = config.load(None, {"model": "some/model", "backend": "unsloth"})
    with pytest.raises(ValueError, match="--backend hf"):
        check_processes(resolve(unsloth, PROFILES["t4"], backend=("unsloth", "asked for")), 2)


def test_held_out_shares_are_contiguous_and_as_even_as_possible() -> None:
    from lowvram_r1.train.distributed import shares_of

    assert shares_of(5, 2) == [range(0, 3), range(3, 5)]
    assert shares_of(1, 3) == [range(0, 1), range(1, 1), range(1, 1)]
    for n in range(0, 40):
        for count in (1, 2, 3, 8):
            shares = shares_of(n, count)
            assert [i for share in shares for i in share] == list(range(n))
            lengths = [len(share) for share in shares]
            assert lengths == sorted(lengths, reverse=True) and lengths[0] - lengths[-1] <= 1


def test_bad_num_processes_exits_2_before_anything_loads(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--num-processes", "0"]) == 2
    assert "num_processes" in capsys.readouterr().err


def test_runs_shows_the_number_of_processes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = RunDir(tmp_path / "runs" / "pair")
    run.path.mkdir(parents=True)
    run.write_status(state="finished", max_steps=2, step=2, processes=2)
    assert main(["runs", "--root", str(tmp_path / "runs")]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert "procs" in header and row.split()[3] == "2"


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_shipped_accelerate_configs_load_and_validate(path: Path) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    first = path.read_text().splitlines()[0]
    assert first.startswith("# lowvram-r1 train ") and f"--accelerate-config {path.stem}" in first
    loaded = load_config_from_file(str(path))  # accelerate's loader: unknown keys and bad enum values raise
    assert isinstance(loaded, ClusterConfig) and loaded.num_processes >= 2
    parser = launch_command_parser()
    args, _, _ = _validate_launch_command(parser.parse_args(["--config_file", str(path), "train.py"]))
    known = set(vars(parser.parse_args(["train.py"])))
    assert set(loaded.deepspeed_config) <= known, "a deepspeed_config key accelerate launch does not know"
    if "zero" in path.name:
        assert args.use_deepspeed and int(args.zero_stage) == int(path.stem[-1])
    else:
        assert args.multi_gpu and not args.use_deepspeed


def test_doctor_says_how_many_gpus_and_what_train_does_with_them(capsys: pytest.CaptureFixture) -> None:
    from lowvram_r1.cli.launch import processes_plan
    from lowvram_r1.models.hardware import detect_hardware

    main(["doctor"])
    assert processes_plan(detect_hardware())[0] in capsys.readouterr().out  # "gpus: 0 — ..." on CPU machines
    assert processes_plan(PROFILES["none"])[0] == "gpus: 0 — train runs one process on the CPU"
    assert processes_plan(PROFILES["t4"])[0].startswith("gpus: 1 — train runs one process on it")
    several = " ".join(processes_plan(replace(PROFILES["h100"], gpu_count=4)))
    assert "gpus: 4" in several and "--num-processes 4 --backend hf" in several
    assert "--accelerate-config deepspeed-zero2" in several


def test_train_num_processes_checks_then_execs_the_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from lowvram_r1.cli import launch
    from lowvram_r1.runs.lifecycle import RunSession

    for name in ("WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    launched: list[list[str]] = []
    monkeypatch.setattr(launch.os, "execv", lambda path, command: launched.append(command))
    run = RunDir(tmp_path / "runs" / "pair")
    model = tmp_path / "model"  # nothing loads here: the launched processes would
    model.mkdir()
    recipe = saved_recipe(model, run, tmp_path, max_steps=2)
    assert main(["train", "--config", str(recipe), "--no-progress"]) == 0
    command = launched.pop()
    assert command[4:6] == ["torch.distributed.run", "--standalone"] and "--nproc-per-node=2" in command
    assert command[-2:] == ["--output-dir", str(run.path)]  # every process gets the same folder
    assert not run.path.exists()  # this process only checked: the launched main process claims the folder

    assert main(["train", "--config", str(recipe), "--resume"]) == 2  # nothing to resume: refused before launching
    assert "no complete checkpoint" in capsys.readouterr().err
    with RunSession(run):  # a live trainer holds the folder
        assert main(["train", "--config", str(recipe)]) == 2
    assert "being trained by another process" in capsys.readouterr().err
    assert not launched
