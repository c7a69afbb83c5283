"""The run resolved once (:mod:`lowvram_r1.run_plan`): one task look-up per stage run, a frozen plan, a sequence
budget that counts what a search environment inserts, and the refusals that moved out of the config layer."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from lowvram_r1 import config, run_plan
from lowvram_r1.run_plan import RunPlan, SequenceBudget, resolve

PACKAGE = Path(__file__).resolve().parents[1] / "lowvram_r1"
OPTIONS = {"min_numbers": 3, "max_numbers": 3, "max_number": 9, "max_target": 100, "question_style": "compact"}


def test_the_plan_is_frozen() -> None:
    plan = resolve(config.load(None, {"task": "countdown"}))
    assert isinstance(plan, RunPlan)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.task = plan.task  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.budget.prompt = 1  # type: ignore[misc]


def test_a_search_tasks_budget_counts_the_retrieved_passages() -> None:
    lengths = {"max_prompt_length": 256, "max_completion_length": 128}
    cfg = config.load(None, {"task": "search_r1", "model": "Qwen/Qwen2.5-0.5B-Instruct", **lengths})
    plan = resolve(cfg)
    inserted = plan.task.environment_tokens(plan.options)
    assert inserted > 0  # max_turns x top_k passages
    assert plan.budget == SequenceBudget(256, 128, inserted)
    assert plan.budget.context == 256 + 128 + inserted and plan.budget.generated == 128 + inserted
    assert plan.task.name == "search_r1" and plan.tiny is None
    assert plan.prompt_format.style == cfg.task.prompt_style and plan.options == plan.task.resolve_options({})
    single = resolve(config.load(None, {"task": "countdown"}))
    assert single.budget.inserted == 0


def test_the_tiny_models_spec_holds_the_whole_budget() -> None:
    plan = resolve(config.load(None, {"task": "search_r1", "model": "tiny", "max_completion_length": 256}))
    assert plan.tiny is not None and plan.tiny.context >= plan.budget.context  # the passages fit its positions
    assert dict(plan.tiny.options) == dict(plan.cfg.task.options)
    assert plan.cfg.task.options == {**plan.task.tiny_options}  # laid under the config's own options


def test_the_tiny_options_stay_under_the_recipe_and_flags() -> None:
    plan = resolve(config.load(None, {"task": "countdown", "model": "tiny", "task.options": {"max_number": 7}}))
    assert plan.cfg.task.options["max_number"] == 7  # the flag wins
    assert plan.cfg.task.options["question_style"] == "compact"  # the task's tiny variant fills the rest
    real = config.load(None, {"task": "countdown", "model": "Qwen/Qwen2.5-0.5B-Instruct"})
    assert resolve(real).cfg.task.options == {} and resolve(real).tiny is None  # real models: none


def test_a_bad_reward_count_and_a_bad_option_are_refused_by_resolve() -> None:
    cfg = config.load(None, {"task": "countdown", "reward_weights": [1.0]})  # the config layer needs no task now
    with pytest.raises(ValueError, match="task countdown has 2 rewards but reward_weights has 1 values"):
        resolve(cfg)
    bad = config.load(None, {"task": "countdown", "task.options": {"max_numbr": 3}})
    with pytest.raises(ValueError, match="task countdown has no option max_numbr; valid options: "):
        resolve(bad)
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        resolve(config.load(None, {"task": "nope"}))
    gsm8k_tiny = resolve(config.load(None, {"task": "gsm8k", "model": "tiny"}))  # plan and score still run
    with pytest.raises(ValueError, match="the built-in tiny model cannot be built for gsm8k"):
        gsm8k_tiny.tiny  # noqa: B018  (read where a stage needs it: before its data is fetched)


def test_with_config_keeps_the_task_and_rederives_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = resolve(config.load(None, {"task": "countdown"}), backend=("hf", "asked for"))
    monkeypatch.setattr(run_plan, "get_task", lambda name: pytest.fail(f"looked {name} up again"))
    longer = dataclasses.replace(plan.cfg, generation=dataclasses.replace(plan.cfg.generation, max_prompt_length=999))
    again = plan.with_config(longer)
    assert again.task is plan.task and again.budget.prompt == 999 and again.backend == "hf"
    other = dataclasses.replace(plan.cfg, task=dataclasses.replace(plan.cfg.task, name="gsm8k"))
    with pytest.raises(ValueError, match="a plan's task is fixed"):
        plan.with_config(other)


def get_task_calls() -> list[str]:
    """Every ``get_task(`` call in the package's code (docstrings and comments are no calls)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "get_task":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_rows_are_the_tasks_split_in_the_runs_options_and_format() -> None:
    from lowvram_r1.tasks import Split

    plan = resolve(config.load("cpu-demo", {"data_seed": 5}))
    rows = plan.rows("test", 6)
    expected = plan.task.build_rows(Split("test", 6, 5, None, dict(plan.options)), plan.prompt_format)
    assert rows == expected and len(rows) == 6
    assert plan.rows("train", 6, seed_offset=1) != plan.rows("train", 6)  # another draw of the generator
    assert plan.rows("train", 6, seed_offset=1) == plan.task.build_rows(
        Split("train", 6, 6, None, dict(plan.options)), plan.prompt_format
    )


def test_get_task_is_called_at_the_entry_points_only() -> None:
    calls = get_task_calls()
    assert len(calls) <= 6, f"get_task belongs to the entry points (resolve, the CLI, the panel): {calls}"
    assert any(call.startswith("run_plan.py:") for call in calls)


@pytest.mark.slow
def test_one_training_run_resolves_its_task_once(
    small_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the command line to the trainer: one ``resolve``, one task look-up."""
    import sys

    from lowvram_r1.cli import main

    looked_up: list[str] = []
    resolved: list[str] = []
    real_get_task, real_resolve = run_plan.get_task, run_plan.resolve

    def counted_get_task(name: str) -> object:
        looked_up.append(name)
        return real_get_task(name)

    def counted_resolve(cfg: config.RunConfig, *args: object, **kwargs: object) -> RunPlan:
        resolved.append(cfg.task.name)
        return real_resolve(cfg, *args, **kwargs)

    for module in [m for name, m in sys.modules.items() if name.startswith("lowvram_r1")]:
        if getattr(module, "get_task", None) is real_get_task:  # every holder of the name, lazy importers too
            monkeypatch.setattr(module, "get_task", counted_get_task)
    monkeypatch.setattr(run_plan, "resolve", counted_resolve)
    recipe = tmp_path / "recipe.yaml"
    options = {**OPTIONS, "train_size": 64, "test_size": 4}
    config.save(config.load(None, {"task": "countdown", "task.options": options, "eval_size": 0}), recipe)
    argv = ["train", "--config", str(recipe), "--model", str(small_model), "--max-steps", "1", "--batch-size", "4"]
    argv += ["--num-generations", "2", "--max-completion-length", "16", "--max-prompt-length", "64"]
    argv += ["--system-prompt", "", "--no-progress", "--output-dir", str(tmp_path / "run")]
    assert main(argv) == 0
    assert (tmp_path / "run" / "adapter").is_dir()
    assert looked_up == ["countdown"] and resolved == ["countdown"]  # the CLI resolves; the stage reuses its plan
