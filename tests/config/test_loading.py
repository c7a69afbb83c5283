"""Config: defaults < YAML < flags, unknown keys, and every validation error, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from lowvram_r1 import config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_precedence_defaults_then_yaml_then_flags(tmp_path: Path) -> None:
    recipe = write(tmp_path, "training:\n  max_steps: 7\n  learning_rate: 0.001\nlora:\n  r: 4\n")
    cfg = config.load(recipe, {"max_steps": 9})
    assert cfg.training.max_steps == 9  # flag beats YAML
    assert cfg.training.learning_rate == 0.001  # YAML beats default
    assert cfg.lora.r == 4
    assert cfg.training.num_generations == config.TrainingSettings().num_generations  # default kept


def test_flags_by_flag_name_and_dotted_name() -> None:
    cfg = config.load(None, {"lora-r": 8, "training.beta": 0.04, "model": "tiny", "task": "gsm8k"})
    assert (cfg.lora.r, cfg.training.beta, cfg.model.name, cfg.task.name) == (8, 0.04, "tiny", "gsm8k")


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ("training:\n  max_stepz: 3\n", "unknown key 'training.max_stepz'; valid keys: max_steps"),
        ("trainer:\n  max_steps: 3\n", "unknown section 'trainer'"),
        ("- a\n- b\n", "must hold a mapping"),
        ("training: [1, 2\n", "not valid YAML"),
    ],
)
def test_bad_yaml_names_the_problem(tmp_path: Path, recipe: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        config.load(write(tmp_path, recipe))


def test_unknown_flag_lists_valid_keys() -> None:
    with pytest.raises(ValueError, match="unknown config key 'nope'; valid keys: .*max-steps"):
        config.load(None, {"nope": 1})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_generations": 3}, "must be divisible by num_generations"),
        ({"num_generations": 1, "batch-size": 1}, "at least 2"),
        ({"learning_rate": 0.0}, r"learning_rate \(--learning-rate\) must be a number in \(0, 1\]"),
        ({"learning_rate": -1e-5}, r"learning_rate \(--learning-rate\) must be a number in \(0, 1\]"),
        ({"max_steps": 0}, r"max_steps \(--max-steps\) must be an integer in \[1, 10000000\]"),
        ({"temperature": 0.0}, "temperature.*GRPO needs varied completions"),
        ({"top_p": 1.5}, "top_p"),
        ({"lora-r": 0}, r"lora.r \(--lora-r\) must be an integer in \[1, 1024\]"),
        ({"beta": -0.1}, r"beta \(--beta\) must be a number in \[0, 100\]"),
        ({"reward_weights": [1.0]}, "has 2 rewards but reward_weights has 1"),
        ({"vllm_gpu_memory_utilization": 1.5}, "vllm_gpu_memory_utilization"),
        ({"dtype": "float8"}, "dtype must be one of"),
    ],
)
def test_validation_errors(overrides: dict, message: str) -> None:
    from lowvram_r1.run_plan import resolve

    with pytest.raises(ValueError, match=message):
        resolve(config.load(None, overrides))  # the reward count needs the task: resolve counts it


def test_saved_config_round_trips(tmp_path: Path) -> None:
    cfg = config.load(None, {"max_steps": 11, "task": "gsm8k"})
    config.save(cfg, tmp_path / "config.yaml")
    assert config.load(tmp_path / "config.yaml") == cfg


def test_grpo_config_carries_our_values(tmp_path: Path) -> None:
    cfg = config.load(
        None,
        {
            "max_steps": 5,
            "num_generations": 4,
            "batch-size": 8,
            "learning_rate": 1e-4,
            "max_completion_length": 32,
            "beta": 0.02,
            "loss_type": "dr_grpo",
        },
    )
    args = config.to_grpo_config(cfg, tmp_path, use_cpu=True)
    assert (args.max_steps, args.num_generations, args.per_device_train_batch_size) == (5, 4, 8)
    assert (args.learning_rate, args.max_completion_length, args.beta, args.loss_type) == (1e-4, 32, 0.02, "dr_grpo")
    assert args.generation_batch_size == 8


def test_yaml_types_are_checked_by_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="training.max_steps must be an integer, got 'ten'"):
        config.load(write(tmp_path, "training:\n  max_steps: ten\n"))
    with pytest.raises(ValueError, match="lora.r must be an integer"):
        config.load(write(tmp_path, "lora:\n  r: [16]\n"))
    # YAML 1.1 reads 5e-6 as a string; a float field takes it as the number it means
    assert config.load(write(tmp_path, "training:\n  learning_rate: 5e-6\n")).training.learning_rate == 5e-6


def test_gradient_checkpointing_is_false_true_or_offload(tmp_path: Path) -> None:
    import lowvram_r1.cli as cli

    for text, value in (("true", True), ("false", False), ("offload", "offload")):
        cfg = config.load(write(tmp_path, f"model:\n  gradient_checkpointing: {text}\n"))
        assert cfg.model.gradient_checkpointing == value and type(cfg.model.gradient_checkpointing) is type(value)
        config.save(cfg, tmp_path / "saved.yaml")
        assert config.load(tmp_path / "saved.yaml") == cfg  # config.yaml of a run reads back the same
        assert config.trainer_args(cfg, tmp_path)["gradient_checkpointing"] is (value is not False)
        flags = cli.build_parser().parse_args(["plan", "--gradient-checkpointing", text])
        assert cli.overrides_from(flags) == {"model.gradient_checkpointing": value}
    alone = cli.build_parser().parse_args(["plan", "--gradient-checkpointing"])
    assert cli.overrides_from(alone) == {"model.gradient_checkpointing": True}
    with pytest.raises(ValueError, match="model.gradient_checkpointing must be false, true or offload, got 3"):
        config.load(write(tmp_path, "model:\n  gradient_checkpointing: 3\n"))
    with pytest.raises(ValueError, match="must be false, true or offload, got 'sometimes'"):
        config.load(None, {"gradient_checkpointing": "sometimes"})
    with pytest.raises(ValueError, match="write true and false without quotes"):
        config.load(write(tmp_path, "model:\n  gradient_checkpointing: 'true'\n"))


def test_every_section_is_named_settings_and_the_old_names_still_import(tmp_path: Path) -> None:
    assert [cls.__name__ for cls in config.SECTION_TYPES.values()] == [
        f"{name.capitalize()}Settings" for name in config.SECTION_TYPES
    ]
    from lowvram_r1.config import ModelConfig, TrainingConfig  # the names before one suffix: kept for users' code

    assert (ModelConfig, TrainingConfig) == (config.ModelSettings, config.TrainingSettings)
    cfg = config.load(None, {"max_steps": 3})  # the whole config, one import: load, save, dump, the TRL view
    config.save(cfg, tmp_path / "config.yaml")
    assert config.load(tmp_path / "config.yaml") == cfg and config.dump(cfg).startswith("model:")
    assert config.grpo_config_kwargs(cfg, tmp_path)["max_steps"] == 3
