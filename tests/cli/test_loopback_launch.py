"""``train --num-processes N`` on one machine: the launcher's unauthenticated c10d stores (torchrun's rendezvous store
and the store its workers share) and gloo's listeners accept connections on loopback only (issue 27, item 11).

The launcher ``train`` would exec is started for real with a probe program in place of ``lowvram_r1.cli``: each
process lists the TCP sockets it listens on (Linux's /proc), rank 0 its launcher's too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lowvram_r1.cli.launch import launcher_command
from lowvram_r1.cli.loopback_launch import is_loopback
from lowvram_r1.recipes import accelerate_config_path
from tests.hardware import PROFILES
from tests.launch_output import why_it_failed
from tests.paths import ROOT

PROBE = """
import json, os, time
import torch.distributed as dist

def listening(pid):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in open(f"/proc/net/{table}").read().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:
                found.append(parts[1].split(":")[0])
    return found

dist.init_process_group("gloo")
dist.barrier()
launcher = listening(os.getppid()) if dist.get_rank() == 0 else []
report = json.dumps({"rank": dist.get_rank(), "own": listening(os.getpid()), "launcher": launcher})
os.write(1, (report + "\\n").encode())  # one write: the two workers share the pipe (print's two could interleave)
dist.barrier()
dist.destroy_process_group()
"""
LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def test_the_launcher_runs_inside_the_loopback_wrapper() -> None:
    cpu = launcher_command(2, PROFILES["none"], None, ["train", "--task", "countdown"])
    assert cpu[1:5] == ["-m", "lowvram_r1.cli.loopback_launch", "--gloo-loopback", "torch.distributed.run"]
    assert "--standalone" in cpu and "--local-addr=127.0.0.1" in cpu and "--nproc-per-node=2" in cpu
    assert cpu[-5:] == ["-m", "lowvram_r1.cli", "train", "--task", "countdown"]
    gpus = launcher_command(4, PROFILES["h100"], None, ["train"])
    assert gpus[1:4] == ["-m", "lowvram_r1.cli.loopback_launch", "--gloo-loopback"]
    assert gpus[4:7] == ["accelerate.commands.launch", "--num_processes", "4"] and "--multi_gpu" in gpus
    configured = launcher_command(2, PROFILES["h100"], "configs/accelerate/ddp.yaml", ["train"])
    assert configured[1:4] == ["-m", "lowvram_r1.cli.loopback_launch", "accelerate.commands.launch"]  # may span hosts


@pytest.mark.parametrize(("host", "loopback"), [("localhost", True), ("127.0.0.1", True), ("::1", True)])
def test_loopback_hosts_are_recognised(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert not is_loopback("10.0.0.2") and not is_loopback("node-1") and not is_loopback("0.0.0.0")


def listeners(command: list[str], cwd: Path) -> tuple[list[str], list[str]]:
    """Run ``command`` (a launcher, then the probe) and return (the launcher's, the workers') listening addresses."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("GLOO_SOCKET_IFNAME", None)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert done.returncode == 0, why_it_failed(done.stderr)
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["rank"] for r in reports) == [0, 1]
    return [a for r in reports for a in r["launcher"]], [a for r in reports for a in r["own"]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_torchrun_stores_and_gloo_listen_on_loopback_only(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    command = launcher_command(2, PROFILES["none"], None, ["train"])
    assert command[-3:] == ["-m", "lowvram_r1.cli", "train"]
    launcher, workers = listeners([*command[:-3], str(probe)], tmp_path)
    assert len(launcher) >= 2 and workers, (launcher, workers)  # the rendezvous and shared stores; gloo's
    assert set(launcher + workers) <= LOOPBACK_HEX, f"listening beyond loopback: {launcher + workers}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_accelerate_launchs_store_listens_on_loopback_only(tmp_path: Path) -> None:
    ddp = tmp_path / "ddp.yaml"  # the shipped DDP config, on CPU processes
    ddp.write_text(accelerate_config_path("ddp").read_text().replace("use_cpu: false", "use_cpu: true"))
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    command = launcher_command(2, PROFILES["none"], str(ddp), ["train"])
    launcher, _ = listeners([*command[:-3], str(probe)], tmp_path)
    assert launcher and set(launcher) <= LOOPBACK_HEX, f"the launcher listens beyond loopback: {launcher}"
