"""Clear errors (exit 2, before anything slow) instead of tracebacks or silent surprises (issue 27, items 14 and 15):
task options of the wrong kind, sizes a generator cannot make, a folder where the run's lock file goes, JSON nested
past Python's stack, negative counts, a YAML key given twice; and LaTeX thin spaces in a boxed number.

The CLI runs in-process (``main([...])``); every command here that passed its checks would go on to load a model
from a folder that does not exist, so the message, not only the exit code, is what each test checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.cli import main
from lowvram_r1.runs import RunDir
from lowvram_r1.runs.lifecycle import RunSession
from lowvram_r1.tasks import TASKS, Split

NO_MODEL = "/nonexistent/lowvram-r1-model"


def recipe(tmp_path: Path, text: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


# -- task options ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("task", "options", "words"),
    [
        ("search_r1", {"top_k": float("inf")}, "option top_k must be a whole number"),
        ("countdown", {"max_number": float("inf")}, "option max_number must be a whole number"),
        ("countdown", {"max_number": "abc"}, "option max_number must be a whole number"),
        ("countdown", {"max_target": 2.5}, "option max_target must be a whole number"),
        ("countdown", {"min_numbers": 0, "max_numbers": 0}, "1 <= min_numbers <= max_numbers"),
        ("countdown", {"max_number": 0}, "max_number must be 1..1000000"),
        ("countdown", {"train_size": 100_000_000}, "more rows than a procedural task makes"),
    ],
)
def test_bad_task_options_are_refused_before_rows_are_made(task: str, options: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        TASKS[task].build_rows(Split("train", 10, 0, None, options))


def test_whole_numbers_written_as_floats_still_work() -> None:
    assert TASKS["countdown"].resolve_options({"max_number": 9.0})["max_number"] == 9
    assert type(TASKS["countdown"].resolve_options({"max_number": 9.0})["max_number"]) is int


def test_task_options_from_a_recipe_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = recipe(tmp_path, "task:\n  name: search_r1\n  options:\n    top_k: .inf\n")
    code, err = run_cli(capsys, "plan", "--config", path, "--model", "Qwen/Qwen2.5-0.5B-Instruct")
    assert code == 2 and "option top_k must be a whole number" in err
    path = recipe(tmp_path, "task:\n  name: countdown\n  options:\n    max_number: abc\n")
    code, err = run_cli(capsys, "eval", "--config", path, "--model", NO_MODEL, "--limit", "5")
    assert code == 2 and "option max_number must be a whole number" in err


def test_a_huge_train_size_is_refused_before_generating(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # before the fix each of these generated rows for an hour (and tens of GB): the check comes first now
    with pytest.raises(ValueError, match="more rows than a procedural task makes"):
        TASKS["countdown"].build_rows(Split("train", 100_000_000, 0, None, {}))
    with pytest.raises(ValueError, match="more rows than a procedural task makes"):
        TASKS["logic"].build_rows(Split("train", 100_000_000, 0, None, {}))
    run = tmp_path / "run"
    argv = ["train", "--task", "countdown", "--train-size", "100000000", "--model", NO_MODEL, "--output-dir", str(run)]
    code, err = run_cli(capsys, *argv)
    assert code == 2 and "--train-size 100000000 is more rows than a procedural task makes" in err
    assert not run.exists()


# -- counts on the command line --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["eval", "--task", "countdown", "--limit", "-1"], "argument --limit: must be 1..1000000, got -1"),
        (["eval", "--task", "countdown", "--samples", "-3"], "argument --samples: must be 1..1024, got -3"),
        (["eval", "--task", "countdown", "--limit", "0"], "argument --limit: must be 1..1000000, got 0"),
        (["sample", "--task", "countdown", "--n", "-2"], "argument --n: must be 1..1024"),
        (["sample", "--task", "countdown", "--limit", "x"], "argument --limit: expected a whole number"),
    ],
)
def test_negative_or_zero_counts_exit_2(capsys: pytest.CaptureFixture, argv: list[str], words: str) -> None:
    code, err = run_cli(capsys, *argv, "--model", NO_MODEL)
    assert code == 2 and words in err


def test_a_negative_split_size_is_refused_in_the_library_too() -> None:
    with pytest.raises(ValueError, match="size must be a whole number, 0 .all. or more"):
        Split("test", -1, 0)


# -- run folder, JSON, YAML ------------------------------------------------------------------------------------------
def test_a_folder_as_the_trainer_lock_is_refused_with_a_message(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.lock_file.mkdir()
    with pytest.raises(ValueError, match="cannot be the run's lock file"):
        with RunSession(run):
            pass
    assert run.lock_file.is_dir()


def test_json_nested_past_the_stack_is_a_clear_error(capsys: pytest.CaptureFixture) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    code, err = run_cli(capsys, "score", "--task", "countdown", "--row", deep, "--completion", "x")
    assert code == 2 and "--row is not valid JSON" in err


def test_a_deep_json_row_in_a_data_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text('{"nums": [1, 2], "target": 3}\n{"nums": ' + "[" * 100_000 + "]" * 100_000 + ', "target": 3}\n')
    code, err = run_cli(capsys, "eval", "--task", "countdown", "--data-path", str(data), "--model", NO_MODEL)
    assert code == 2 and str(data) in err


@pytest.mark.parametrize(
    "text",
    [
        "training:\n  max_steps: 5\n  max_steps: 500\n",
        "training: {max_steps: 5, max_steps: 500}\n",
        "task:\n  name: countdown\ntask:\n  name: gsm8k\n",
        "task:\n  options:\n    max_number: 9\n    max_number: 99\n",
    ],
)
def test_a_yaml_key_given_twice_is_an_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValueError, match="is given twice"):
        config.load(recipe(tmp_path, text))


def test_the_cli_names_both_lines_of_a_repeated_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = recipe(tmp_path, "training:\n  max_steps: 5\n  learning_rate: 1.0e-5\n  max_steps: 500\n")
    code, err = run_cli(capsys, "plan", "--config", path, "--model", "Qwen/Qwen2.5-0.5B-Instruct")
    assert code == 2 and "'max_steps' is given twice, lines 2 and 4" in err


def test_yaml_without_repeated_keys_still_loads(tmp_path: Path) -> None:
    cfg = config.load(recipe(tmp_path, "training:\n  max_steps: 5\nmodel:\n  name: tiny\n"))
    assert cfg.training.max_steps == 5 and cfg.model.name == "tiny"


# -- thin spaces in a boxed number -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "boxed",
    [
        r"\boxed{11,\! 111,\! 111,\! 100}",
        r"\boxed{11,\!111,\!111,\!100}",
        r"\boxed{11{,}111{,}111{,}100}",
        r"\boxed{11\,111\,111\,100}",
    ],
)
def test_thousands_separators_with_thin_spaces_read_as_the_number(boxed: str) -> None:
    check = TASKS["math"].check
    assert check(f"<think>work</think> So the answer is {boxed}.", {"answer": "11111111100"})
    assert not check(f"<think>work</think> So the answer is {boxed}.", {"answer": "11111111101"})
