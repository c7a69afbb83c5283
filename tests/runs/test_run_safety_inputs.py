"""Bounds on input, probed as a hostile or careless user would (issue 17): YAML alias bombs and oversized recipes,
strings past the OS's file-name limits, numbers outside sane ranges, more runs than the machine has GPUs, Gradio's
login, uploads and login page, and Try it's question text. The CLI runs through subprocess, the panel through its
handlers or over HTTP against a served panel."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lowvram_r1 import config
from lowvram_r1.recipes import PACKAGE_RECIPES
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.lifecycle import RunSession
from lowvram_r1.ui.launch_command import LaunchRequest, build_launch
from tests.paths import ROOT

CONFIGS = PACKAGE_RECIPES
RECIPE = "cpu-demo"
TOO_LONG = "m" * 300  # one path part past NAME_MAX (255)
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(*argv: str, timeout: float = 300, limit_memory: bool = False) -> subprocess.CompletedProcess:
    """``lowvram-r1 ARGV`` in a child process; ``limit_memory`` caps it at 3 GiB of address space."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    return subprocess.run(
        [sys.executable, "-m", "lowvram_r1.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=ENV,
        preexec_fn=cap if limit_memory else None,
    )


# -- YAML ------------------------------------------------------------------------------------------------------------
def alias_bomb(levels: int) -> str:
    """A "billion laughs" under task.options: 9**levels strings from a few hundred bytes."""
    lines = ["task:", "  options:", '    l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(9))
    assert bomb.stat().st_size < 600
    started = time.monotonic()
    done = cli("plan", "--config", str(bomb), timeout=120, limit_memory=True)
    assert done.returncode == 2, done.stderr[-500:]
    assert "aliases (*name) are not allowed" in done.stderr
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task:\n  system_prompt: '" + "x" * (1 << 20) + "'\n", "over 1024 KiB"),
        ("task:\n  options:\n    deep: " + "[" * 200 + "]" * 200 + "\n", "nested more than 32 levels"),
        ("training:\n  max_steps: " + "9" * 5000 + "\n", "has a value YAML cannot read"),
        (b"task:\n  system_prompt: \xff\xfe\n", "is not UTF-8 text"),
        ("defaults: &d {max_steps: 3}\ntraining:\n  <<: *d\n", "aliases (*name) are not allowed"),
    ],
    ids=["oversized", "deep", "huge-integer", "not-utf8", "merge-key"],
)
def test_oversized_deep_or_unreadable_yaml_is_refused_with_a_message(
    tmp_path: Path, text: str | bytes, message: str
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=re.escape(message)):
        config.load(recipe)


class Loud(str):
    """A string that counts how often its repr is taken (what an eager error message would do)."""

    reprs = 0

    def __repr__(self) -> str:
        Loud.reprs += 1
        return super().__repr__()


def test_config_checks_build_no_message_for_values_that_pass() -> None:
    Loud.reprs = 0
    cfg = config.from_dict({"task": {"system_prompt": Loud("be brief")}, "training": {"loss_type": Loud("dapo")}})
    assert cfg.training.loss_type == "dapo"
    assert Loud.reprs == 0


# -- strings past the file-name limit -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--model", TOO_LONG],
        ["plan", "--model", "org/" * 1100 + "m"],
        ["plan", "--config", TOO_LONG + ".yaml"],
        ["train", "--model", TOO_LONG, "--no-progress"],
    ],
    ids=["plan-model", "plan-model-path", "plan-config", "train-model"],
)
def test_a_string_past_the_file_name_limit_exits_2_with_a_message(argv: list[str]) -> None:
    done = cli(*argv)
    assert done.returncode == 2, done.stderr[-1500:]
    assert "Traceback" not in done.stderr
    assert ("too long to be a path or a hub id" in done.stderr) or ("File name too long" in done.stderr)


def test_the_memory_preview_refuses_a_model_string_past_the_file_name_limit(tmp_path: Path) -> None:
    from lowvram_r1.ui.panel import Panel

    panel = Panel(tmp_path / "runs", CONFIGS)
    assert "fix the form first — --model is too long" in panel.memory_plan(RECIPE, {"model": TOO_LONG})
    with pytest.raises(ValueError, match="--model is too long"):
        panel.plan_launch("long", RECIPE, {"model": TOO_LONG})


# -- numeric ranges ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "flag", "allowed"),
    [
        ({"max_steps": 10**18}, "--max-steps", "[1, 10000000]"),
        ({"learning_rate": math.inf}, "--learning-rate", "(0, 1]"),
        ({"learning_rate": math.nan}, "--learning-rate", "(0, 1]"),
        ({"beta": math.inf}, "--beta", "[0, 100]"),
        ({"temperature": math.inf}, "--temperature", "(0, 10]"),
        ({"eval_temperature": math.inf}, "--eval-temperature", "[0, 10]"),
        ({"top_p": math.nan}, "--top-p", "(0, 1]"),
        ({"max_grad_norm": math.nan}, "--max-grad-norm", "[0, 1000000]"),
        ({"weight_decay": -0.1}, "--weight-decay", "[0, 1]"),
        ({"epsilon": 0.0}, "--epsilon", "(0, 1]"),
        ({"batch-size": 10**6}, "--batch-size", "[1, 4096]"),
        ({"num_generations": 2048, "batch-size": 2048}, "--num-generations", "[2, 1024]"),
        (
            {"num_generations": 8, "batch-size": 4096, "gradient_accumulation_steps": 8},
            "--gradient-accumulation",
            "16384",
        ),
        ({"max_completion_length": 10**9}, "--max-completion-length", "[1, 1048576]"),
        ({"seed": -1}, "--seed", "[0, 4294967295]"),
        ({"lora-dropout": 1.0}, "--lora-dropout", "[0, 1)"),
        ({"eval_size": 10**9}, "--eval-size", "[0, 1000000]"),
    ],
)
def test_numbers_outside_their_range_are_refused_naming_the_flag_and_the_range(
    overrides: dict, flag: str, allowed: str
) -> None:
    with pytest.raises(ValueError) as error:
        config.load(None, overrides)
    assert flag in str(error.value) and allowed in str(error.value)


def test_reward_weights_must_be_finite() -> None:
    from lowvram_r1.tasks import get_task

    weights = [1.0] * len(get_task("countdown").reward_funcs)
    config.load(None, {"reward_weights": weights})
    with pytest.raises(ValueError, match="--reward-weights must be finite"):
        config.load(None, {"reward_weights": [math.inf, *weights[1:]]})


def test_the_cli_refuses_out_of_range_numbers_from_flags_and_yaml(tmp_path: Path) -> None:
    done = cli("plan", "--max-steps", str(10**18))
    assert done.returncode == 2 and "--max-steps" in done.stderr and "[1, 10000000]" in done.stderr
    recipe = tmp_path / "nan.yaml"
    recipe.write_text("training:\n  max_grad_norm: .nan\n  weight_decay: -1\n")
    done = cli("plan", "--config", str(recipe))
    assert done.returncode == 2 and "--max-grad-norm" in done.stderr and "got nan" in done.stderr


@pytest.mark.parametrize(
    "values", [{"learning_rate": math.inf}, {"max_steps": 1e18}, {"beta": math.inf}, {"batch_size": 1e6}]
)
def test_the_launch_form_refuses_out_of_range_numbers(tmp_path: Path, values: dict) -> None:
    with pytest.raises(ValueError, match=r"must be (a number|an integer) in [\[(]"):
        build_launch(LaunchRequest("r", RECIPE, values), tmp_path / "runs", CONFIGS)


# -- concurrent runs -----------------------------------------------------------------------------------------------
def live_run(runs_root: Path, name: str) -> RunSession:
    """A run another trainer is training: this test process holds its lock (exit the session to end it)."""
    run = RunDir(runs_root / name)
    run.path.mkdir(parents=True)
    session = RunSession(run).__enter__()  # claims the empty folder (marks it ours), then says it runs
    run.write_status(state="running", step=0, max_steps=10, task="countdown", model="tiny", pid=os.getpid())
    return session


def test_the_panel_starts_no_more_runs_than_its_limit(tmp_path: Path) -> None:
    from lowvram_r1.ui.panel import Panel

    runs = tmp_path / "runs"
    elsewhere = live_run(runs, "elsewhere")  # started by the CLI or an earlier panel: counts too
    bad_model = {"model": str(tmp_path / "no-such-model")}  # a real trainer process that fails once it loads
    with pytest.raises(ValueError, match=r"1 run\(s\) already training \(elsewhere\).* at most 1 at a time"):
        Panel(runs, CONFIGS, cwd=ROOT, max_runs=1).start("one", RECIPE, bad_model)
    assert not (runs / "one").exists()

    panel = Panel(runs, CONFIGS, cwd=ROOT, max_runs=2)
    launch = panel.start("two", RECIPE, bad_model)
    process = panel.launcher.processes[launch.run_dir]
    try:
        with pytest.raises(ValueError, match="at most 2 at a time.*--max-runs"):
            panel.start("three", RECIPE, bad_model)
        assert not (runs / "three").exists()
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    launch = panel.start("four", RECIPE, bad_model)  # a slot is free again once a trainer is gone
    process = panel.launcher.processes[launch.run_dir]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    elsewhere.__exit__(None, None, None)


def test_the_default_limit_is_one_run_per_gpu_and_the_flag_is_checked() -> None:
    from lowvram_r1.ui.memory import Gpu
    from lowvram_r1.ui.panel import default_max_runs

    assert default_max_runs(None) == 1
    assert default_max_runs(Gpu("H100", 80.0, 4)) == 4
    done = cli("ui", "--max-runs", "0")
    assert done.returncode == 2 and "--max-runs" in done.stderr


# -- the served panel: uploads, logins, the login page -------------------------------------------------------------
USER, PASSWORD = "me", "s3cret-pass"
clock = [1000.0]  # the throttle's clock: tests move it instead of sleeping through a lockout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The panel as ``lowvram-r1 ui --auth`` serves it (a fast throttle on a fake clock), on a free local port."""
    pytest.importorskip("gradio")
    from lowvram_r1.ui.app import build_app, launch_kwargs
    from lowvram_r1.ui.http_guard import LoginThrottle, launch_options

    throttle = LoginThrottle(
        USER, PASSWORD, delay_s=0.3, max_failures=3, window_s=60, lockout_s=60, clock=lambda: clock[0]
    )
    app = build_app(tmp_path_factory.mktemp("runs"), CONFIGS)
    port = _free_port()
    app.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **launch_options((USER, PASSWORD), throttle),
        **launch_kwargs(),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.close()


@contextlib.contextmanager
def signed_in(url: str) -> Iterator[Any]:
    """An HTTP client holding the session cookie of a successful login."""
    import httpx

    clock[0] += 3600  # past any lockout an earlier test left
    with httpx.Client(base_url=url, timeout=60) as client:
        response = client.post("/login", data={"username": USER, "password": PASSWORD})
        assert response.status_code == 200, response.text
        yield client


def test_the_login_page_embeds_no_api_description(served: str) -> None:
    import httpx

    for query in ("", "?all_endpoints=true"):
        page = httpx.get(f"{served}/{query}", timeout=60)
        assert page.status_code == 200 and '"auth_required":true' in page.text
        assert "window.gradio_api_info = " in page.text
        assert "start_run" not in page.text and 'named_endpoints":{}' in page.text
    assert httpx.get(f"{served}/gradio_api/info", timeout=60).status_code == 401
    with signed_in(served) as client:  # once signed in, the page is Gradio's own, API description included
        page = client.get("/")
        assert '"auth_required":true' not in page.text and "start_run" in page.text


def test_an_upload_over_the_limit_is_refused(served: str) -> None:
    with signed_in(served) as client:
        too_big = client.post("/gradio_api/upload", files={"files": ("big.bin", b"0" * 200_000)})
        assert too_big.status_code == 413
        small = client.post("/gradio_api/upload", files={"files": ("small.txt", b"hello")})
        assert small.status_code == 200


def test_failed_logins_are_slowed_then_locked_out(served: str) -> None:
    import httpx

    clock[0] += 3600

    def attempt(password: str) -> tuple[int, float]:
        started = time.monotonic()
        response = httpx.post(f"{served}/login", data={"username": USER, "password": password}, timeout=60)
        return response.status_code, time.monotonic() - started

    code, seconds = attempt("wrong")
    assert code == 400 and seconds >= 0.3  # a failure is answered only after the delay
    with ThreadPoolExecutor(10) as pool:  # a burst: only the failures up to the limit are checked at all
        codes = sorted(code for code, _ in pool.map(attempt, ["wrong"] * 10))
    assert codes == [400] * 2 + [429] * 8
    code, _ = attempt(PASSWORD)
    assert code == 429  # locked out: the right password too, so a guesser learns nothing
    clock[0] += 61
    code, _ = attempt(PASSWORD)
    assert code == 200


# -- Try it --------------------------------------------------------------------------------------------------------
QUESTIONS = ["-h", "--seed=3", "-x²", "-5 apples minus 3?", "a\x00b\nc", "–\u202e emoji 🧮 and a lone \ud800"]


@pytest.mark.parametrize("question", QUESTIONS)
def test_try_it_hands_any_question_text_to_the_child(tmp_path: Path, question: str) -> None:
    from lowvram_r1.ui.tryit import run_in_child

    run = RunDir(tmp_path / "runs" / "r1")
    run.path.mkdir(parents=True)
    config.save(config.load(RECIPE), run.config)
    result = run_in_child(run.path, question, cwd=ROOT)
    # the child read the question and went on to the run: it has nothing to answer with yet
    assert "has no adapter nor checkpoint yet" in result["error"], result


def test_try_it_refuses_a_question_longer_than_pages() -> None:
    from lowvram_r1.ui.tryit import MAX_QUESTION_CHARS, run_in_child

    result = run_in_child(Path("runs/none"), "x" * (MAX_QUESTION_CHARS + 1))
    assert "shorten it" in result["error"]


@pytest.mark.slow
def test_try_it_answers_a_question_that_starts_with_a_dash(tmp_path: Path, small_model: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from lowvram_r1.ui.tryit import run_in_child

    run = RunDir(tmp_path / "runs" / "r1")
    run.path.mkdir(parents=True)
    config.save(config.load(None, {"model": str(small_model), "max_completion_length": 4}), run.config)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(small_model), LoraConfig(r=2, target_modules="all-linear")
    )
    model.save_pretrained(run.adapter)
    question = "-3 + 5 = ? --seed 9"
    result = run_in_child(run.path, question, cwd=ROOT)
    assert "error" not in result, result
    assert result["question"] == question and question in result["prompt_text"]
    assert json.dumps(result)  # what the panel renders came back whole
