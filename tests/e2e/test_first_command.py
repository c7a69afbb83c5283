"""The first command works as typed: a bare ``train --task T`` picks the recipe for the card it runs on (the tiny
model without a GPU), the tiny model's defaults fit it, and a bad length is refused before any model is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.cli import build_parser, main, train_config
from lowvram_r1.models.tiny import TinySpec, cache_dir, context_for
from lowvram_r1.recipes import PACKAGE_RECIPES, default_recipe, memory_tier
from lowvram_r1.run_plan import resolve
from tests.hardware import PROFILES


@pytest.mark.parametrize(
    ("profile", "unsloth", "task", "expected"),
    [
        ("t4", True, "gsm8k", "gsm8k/t4-unsloth-16gb"),
        ("t4", False, "gsm8k", "gsm8k/16gb"),  # the T4 recipe needs Unsloth
        ("t4", True, "countdown", "countdown/16gb"),  # no T4 recipe for countdown
        ("laptop-8gb", True, "gsm8k", "gsm8k/8gb"),
        ("laptop-8gb", False, "math", "math/8gb"),
        ("rtx4090", True, "countdown", "countdown/24gb"),
        ("h100", True, "gsm8k", "gsm8k/24gb"),  # the largest tier we ship
        ("laptop-8gb", True, "logic", "gsm8k/8gb"),  # no recipes of its own: gsm8k's settings
    ],
)
def test_a_gpu_gets_the_recipe_of_its_memory_tier(profile: str, unsloth: bool, task: str, expected: str) -> None:
    path, reason = default_recipe(task, PROFILES[profile], unsloth_installed=unsloth)
    assert path == PACKAGE_RECIPES / f"{expected}.yaml", reason
    assert PROFILES[profile].name in reason


def test_no_gpu_means_the_tiny_model_and_says_how_to_pick_a_real_one() -> None:
    path, reason = default_recipe("gsm8k", PROFILES["none"], unsloth_installed=False)
    assert path is None and "tiny model" in reason and "--model" in reason


@pytest.mark.parametrize(("reported", "tier"), [(14.74, 16), (7.79, 8), (5.8, 6), (11.7, 12), (23.54, 24), (4.0, 6)])
def test_memory_tiers_follow_what_drivers_report(reported: float, tier: int) -> None:
    assert memory_tier(reported) == tier


def _config(argv: list[str], profile: str) -> config.RunConfig:
    return train_config(build_parser().parse_args(["train", *argv]), PROFILES[profile])


def test_bare_train_uses_the_tier_recipe_and_flags_still_win() -> None:
    cfg = _config(["--task", "gsm8k", "--max-steps", "7"], "laptop-8gb")
    recipe = config.load("gsm8k/8gb")
    assert cfg.model.name == recipe.model.name != "tiny"
    assert cfg.training.max_steps == 7  # the flag beats the recipe
    assert cfg.generation.max_completion_length == recipe.generation.max_completion_length


def test_an_explicit_model_or_config_is_never_replaced() -> None:
    assert _config(["--task", "gsm8k", "--model", "tiny"], "rtx4090").model.name == "tiny"
    cfg = _config(["--config", "cpu-demo"], "rtx4090")  # a shipped recipe, by name
    assert cfg.model.name == "tiny" and cfg.generation.max_completion_length == 48


def test_without_a_gpu_the_bare_command_trains_the_tiny_model() -> None:
    cfg = _config(["--task", "countdown"], "none")
    assert cfg.model.name == "tiny"


@pytest.mark.parametrize("task", ["countdown", "logic", "gsm_symbolic", "rg:basic_arithmetic"])
def test_the_tiny_models_defaults_fit_it(task: str) -> None:
    cfg = config.load(None, {"task": task, "model": "tiny"})
    g = cfg.generation
    assert g.max_prompt_length + g.max_completion_length <= TinySpec.context  # the model keeps its 512 context
    assert cfg.training.learning_rate > config.TrainingSettings().learning_rate  # a rate a 1M model learns at


def test_the_tiny_profile_is_under_yaml_and_flags(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model:\n  name: tiny\ngeneration:\n  max_completion_length: 64\ntask:\n  options:\n    max_number: 7\n"
    )
    cfg = config.load(recipe, {"learning_rate": 0.001})
    assert cfg.generation.max_completion_length == 64 and cfg.training.learning_rate == 0.001
    options = resolve(cfg).cfg.task.options  # the task's own tiny options: laid under the recipe's by resolve
    assert options["max_number"] == 7 and options["question_style"] == "compact"
    assert config.load(None, {"model": "Qwen/Qwen2.5-0.5B"}).training.learning_rate == 5e-6  # real models: plain


def test_the_tiny_context_grows_with_the_lengths_asked_for() -> None:
    assert context_for(384, 128) == 512 and context_for(900, 256) == 1536


def test_a_prompt_longer_than_allowed_is_refused_before_the_tiny_model_is_built(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    flags = {"task": "countdown", "model": "tiny", "max-prompt-length": 8, "data-seed": 4321}  # a seed no test builds
    argv = [part for key, value in flags.items() for part in (f"--{key}", str(value))]
    code = main(["train", *argv, "--output-dir", str(tmp_path / "run")])
    assert code == 2
    assert "more than max_prompt_length 8" in capsys.readouterr().err
    key = resolve(config.load(None, flags)).tiny.key()
    assert (cache_dir() / "tiny" / f"{key}.tokenizer").is_dir()  # the tokenizer (seconds) answered the question
    assert not (cache_dir() / "tiny" / key).exists()  # the model (minutes) was never built
    assert not (tmp_path / "run").exists()


def test_lengths_over_a_models_context_are_refused_before_weights_load(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    model = tmp_path / "model"  # a config.json and nothing else: loading weights would fail differently
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2", "max_position_embeddings": 512}))
    code = main(["train", "--task", "countdown", "--model", str(model), "--output-dir", str(tmp_path / "run")])
    assert code == 2
    assert "exceeds the model's context of 512 tokens" in capsys.readouterr().err
