"""The recipes are package data: listed, shown and copied by ``lowvram-r1 recipes``, named by ``--config`` from any
folder, and picked by ``default_recipe`` from inside the package (a local ``configs/`` is never needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

import lowvram_r1
from lowvram_r1 import config
from lowvram_r1.cli import main
from lowvram_r1.cli.launch import launcher_command
from lowvram_r1.recipes import (
    PACKAGE_RECIPES,
    accelerate_config_path,
    default_recipe,
    recipe_names,
    recipe_path,
    resolve_config,
)
from tests.hardware import PROFILES

PACKAGE = Path(lowvram_r1.__file__).resolve().parent


def test_the_recipes_live_inside_the_package() -> None:
    assert PACKAGE_RECIPES == PACKAGE / "configs" and (PACKAGE_RECIPES / "gsm8k" / "8gb.yaml").is_file()
    names = recipe_names()
    assert {"cpu-demo", "gsm8k/8gb", "gsm8k/t4-unsloth-16gb", "countdown/24gb", "math/6gb"} <= set(names)
    assert not any(name.startswith("accelerate") for name in names)  # launcher configs are not recipes
    assert not (PACKAGE.parent / "configs").exists()  # one copy, in the package


def test_default_recipe_comes_from_the_package_whatever_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # an empty folder: no configs/ here
    path, reason = default_recipe("gsm8k", PROFILES["rtx4090"], unsloth_installed=False)
    assert path == PACKAGE_RECIPES / "gsm8k" / "24gb.yaml", reason


SPECS = [
    "gsm8k/8gb",
    "gsm8k/8gb.yaml",
    "configs/gsm8k/8gb.yaml",
    "lowvram_r1/configs/gsm8k/8gb",
    "/old/clone/configs/gsm8k/8gb.yaml",
]


@pytest.mark.parametrize("spec", SPECS)
def test_a_recipe_name_works_wherever_a_path_did(spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config(spec) == PACKAGE_RECIPES / "gsm8k" / "8gb.yaml"
    assert config.load(spec).model.name == config.load(PACKAGE_RECIPES / "gsm8k" / "8gb.yaml").model.name


def test_a_local_file_wins_over_a_recipe_of_the_same_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cpu-demo").write_text("training:\n  max_steps: 3\n")
    assert config.load("cpu-demo").training.max_steps == 3


@pytest.mark.parametrize(
    "spec", ["../pyproject", "gsm8k/../../recipes", "/etc/passwd", "accelerate/ddp", "nope", "myconfigs/gsm8k/8gb"]
)
def test_only_shipped_recipe_names_resolve(spec: str) -> None:
    assert recipe_path(spec) is None


def test_an_unknown_name_is_a_clear_error_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--config", "gsm8k/9gb"]) == 2
    assert "lowvram-r1 recipes" in capsys.readouterr().err


def test_plan_takes_a_recipe_name_from_an_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--config", "gsm8k/8gb", "--gpu-memory", "8GB"]) == 0
    assert "Qwen2.5-1.5B" in capsys.readouterr().out


def test_recipes_lists_task_tier_model_and_purpose(capsys) -> None:
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("gsm8k/8gb "))
    assert line.split()[:4] == ["gsm8k/8gb", "gsm8k", "8", "GB"] and "Qwen2.5-1.5B-Instruct" in line
    assert "an 8 GB GPU" in line
    assert "gsm8k/t4-unsloth-16gb" in out and "16 GB (T4)" in out and "ddp, deepspeed-zero2" in out


def test_recipes_show_prints_the_file(capsys) -> None:
    assert main(["recipes", "show", "gsm8k/8gb"]) == 0
    assert capsys.readouterr().out == (PACKAGE_RECIPES / "gsm8k" / "8gb.yaml").read_text()
    assert main(["recipes", "show", "ddp"]) == 0
    assert "distributed_type: MULTI_GPU" in capsys.readouterr().out


def test_recipes_copy_never_overwrites_without_force(tmp_path: Path, capsys) -> None:
    target = tmp_path / "my.yaml"
    assert main(["recipes", "copy", "gsm8k/8gb", str(target)]) == 0
    assert target.read_text() == (PACKAGE_RECIPES / "gsm8k" / "8gb.yaml").read_text()
    target.write_text("# my edits\n")
    assert main(["recipes", "copy", "gsm8k/8gb", str(target)]) == 2
    assert "--force" in capsys.readouterr().err and target.read_text() == "# my edits\n"
    assert main(["recipes", "copy", "gsm8k/8gb", str(target), "--force"]) == 0
    assert target.read_text().startswith("# lowvram-r1 train --config gsm8k/8gb")
    assert main(["recipes", "copy", "gsm8k/8gb", str(tmp_path)]) == 0  # a folder: the recipe's file name
    assert (tmp_path / "8gb.yaml").is_file()
    assert main(["recipes", "copy", "no/such", str(tmp_path / "x.yaml")]) == 2
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize(
    "spec", ["ddp", "accelerate/ddp", "configs/accelerate/ddp.yaml", "ddp.yaml", "/x/configs/accelerate/ddp.yaml"]
)
def test_accelerate_configs_travel_by_name(spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shipped = PACKAGE_RECIPES / "accelerate" / "ddp.yaml"
    assert accelerate_config_path(spec) == shipped
    command = launcher_command(2, PROFILES["h100"], spec, ["train"])
    assert command[command.index("--config_file") + 1] == str(shipped)


def test_recipes_are_listed_by_tier_size() -> None:
    names = [name for name in recipe_names() if name.startswith("gsm8k/") and name[6].isdigit()]
    assert names == ["gsm8k/6gb", "gsm8k/8gb", "gsm8k/12gb", "gsm8k/16gb", "gsm8k/24gb"]
