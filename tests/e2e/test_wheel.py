"""The package as users get it: the sdist and the wheel built from it, installed into a fresh virtual environment,
used from an empty folder — `--version`, `tasks`, `recipes`, `plan --config gsm8k/8gb`, `default_recipe` on a
simulated 24 GB card, and a 2-step training run of a small tiny model.

Fast by design: the PEP 517 hooks of setuptools (already installed) build both archives without build isolation or
network; the new environment gets the wheel alone (``pip install --no-deps``) and reaches torch, transformers, trl
and the rest through a ``.pth`` line naming this test environment's site-packages, added after its own. Lines of a
``.pth`` are plain paths, so that folder's own ``.pth`` files (the editable install of this checkout) are not run:
``lowvram_r1`` can come only from the wheel, and the test checks that it does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.hardware import PROFILES
from tests.paths import ROOT

# what a source build needs; anything else in the sdist is a leak (tests, caches, runs, a virtual environment, ...)
SDIST_TOP = {"PKG-INFO", "README.md", "pyproject.toml", "setup.cfg", "MANIFEST.in", "lowvram_r1", "lowvram_r1.egg-info"}
NEVER_SHIPPED = {".venv", "runs", ".cache", "__pycache__", ".pytest_cache", ".git", "tests", "bench", "dist", "build"}


def _build(hook: str, source: Path, out: Path) -> Path:
    """Run setuptools' PEP 517 ``hook`` (build_sdist / build_wheel) in ``source``; the archive it wrote."""
    code = f"import setuptools.build_meta as backend; print(backend.{hook}({str(out)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


def _user_env(venv: Path, home: Path) -> dict[str, str]:
    """A user's shell: the new environment first on PATH, no PYTHONPATH pointing at this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), HOME=str(home))
    return env


@pytest.mark.slow
def test_the_wheel_works_from_an_empty_folder(tmp_path: Path, small_model: Path) -> None:
    started = time.monotonic()
    dist = tmp_path / "dist"
    dist.mkdir()
    sdist = _build("build_sdist", ROOT, dist)
    with tarfile.open(sdist) as archive:
        names = [m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name]
        archive.extractall(tmp_path / "src", filter="data")
    assert {n.split("/")[0] for n in names} <= SDIST_TOP, sorted({n.split("/")[0] for n in names} - SDIST_TOP)
    leaked = [n for n in names if NEVER_SHIPPED & set(n.split("/")[:1]) or "__pycache__" in n or n.endswith(".pyc")]
    assert not leaked
    assert "lowvram_r1/configs/gsm8k/8gb.yaml" in names and "lowvram_r1/configs/accelerate/ddp.yaml" in names
    wheel = _build("build_wheel", tmp_path / "src" / sdist.name.removesuffix(".tar.gz"), dist)  # from the sdist alone
    shipped = zipfile.ZipFile(wheel).namelist()
    recipes = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "lowvram_r1" / "configs").rglob("*.yaml"))
    assert sorted(n for n in shipped if n.startswith("lowvram_r1/configs/")) == recipes
    built = time.monotonic()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)]
    env = _user_env(venv, tmp_path / "home")  # no PYTHONPATH: this checkout must not count as installed
    done = subprocess.run(install, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    purelib = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_test_env_libraries.pth").write_text("\n".join(sorted(ours)) + "\n")  # torch & co., after the wheel
    installed = time.monotonic()

    empty = tmp_path / "empty"
    empty.mkdir()

    def cli(*args: str, timeout: int = 300) -> str:
        done = subprocess.run(
            ["lowvram-r1", *args], cwd=empty, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"lowvram-r1 {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
        return done.stdout

    where = subprocess.run(
        [python, "-c", "import lowvram_r1; print(lowvram_r1.__file__)"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(purelib), f"lowvram_r1 came from {where}, not from the installed wheel"
    assert cli("--version").strip() == "0.1.0"
    assert "countdown" in cli("tasks") and "gsm8k" in cli("tasks")
    listed = cli("recipes")
    assert all(f"gsm8k/{tier}gb" in listed for tier in (6, 8, 12, 16, 24))
    assert "Qwen2.5-1.5B" in cli("plan", "--config", "gsm8k/8gb")
    cli("recipes", "copy", "gsm8k/8gb", "my.yaml")
    assert (empty / "my.yaml").read_text().startswith("# lowvram-r1 train --config gsm8k/8gb")

    probe = (  # the bare command's choice on a simulated RTX 4090, inside the installed package
        "import json, sys; from lowvram_r1.models.hardware import Hardware; from lowvram_r1.recipes import "
        "default_recipe; h = json.loads(sys.argv[1]); h['compute_capability'] = tuple(h['compute_capability']); "
        "print(json.dumps([str(p) for p in default_recipe('gsm8k', Hardware(**h), unsloth_installed=False)]))"
    )
    hardware = json.dumps(asdict(PROFILES["rtx4090"]))
    picked = subprocess.run([python, "-c", probe, hardware], cwd=empty, env=env, capture_output=True, text=True)
    assert picked.returncode == 0, picked.stderr[-3000:]
    path, reason = json.loads(picked.stdout)
    assert Path(path) == purelib / "lowvram_r1" / "configs" / "gsm8k" / "24gb.yaml", reason
    checked = time.monotonic()

    cli(  # two GRPO steps of the session's small tiny model, offline, from the installed package
        "train", "--config", "cpu-demo", "--model", str(small_model), "--max-steps", "2", "--num-generations", "4",
        "--batch-size", "8", "--max-completion-length", "24", "--eval-size", "4", "--eval-samples", "1",
        "--output-dir", "runs/wheel", "--no-progress", timeout=600,
    )  # fmt: skip
    status = json.loads((empty / "runs" / "wheel" / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 2
    trained = time.monotonic()
    print(  # the time this check adds to `make test` (shown with -s or -rP)
        f"wheel check: build {built - started:.1f} s, venv + install {installed - built:.1f} s, "
        f"commands {checked - installed:.1f} s, 2-step run {trained - checked:.1f} s, total {trained - started:.1f} s"
    )
