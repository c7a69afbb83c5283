"""Bring your own task: task and reward specs, the one reward list, guarded rewards, tasks --check, the generic
dataset task, the panel's allow-list (fast); user tasks training on the tiny model (slow)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.cli import main
from tests.paths import ROOT

# A task file written against the Task fields of today (the public API): it must keep working.
TASK_FILE = """
from lowvram_r1.tasks import Task

def rows(split):
    start = 0 if split.split == "test" else 100
    return [{"question": f"What is {n} + 1?", "answer": str(n + 1)} for n in range(start, start + (split.size or 50))]

def check(completion, row):
    text = completion if isinstance(completion, str) else completion[-1]["content"]
    return f"<answer>{row['answer']}</answer>" in text.replace("\\n", "")

def right_reward(completions, answer, **kwargs):
    return [1.0 if check(c, {"answer": a}) else 0.0 for c, a in zip(completions, answer)]

def ok_reward(completions, **kwargs):
    return [0.5 for _ in completions]

def reference(row):
    return f"<think>\\nadd one\\n</think>\\n<answer>\\n{row['answer']}\\n</answer>"

TASK = Task(name="plus_one", description="add one", system_prompt="Add one.", reward_funcs=[right_reward, ok_reward],
            reward_weights=[1.0, 0.1], check=check, rows=rows, answer_columns=("question", "answer"),
            reference_completion=reference)
NOT_A_TASK = 3
"""
REWARDS_FILE = """
def shout_reward(completions, **kwargs):
    return [float(str(c).count("!")) for c in completions]

def fragile_reward(completions, **kwargs):
    return [1.0 / len(str(c)) for c in completions]   # raises on the empty completion

def two_args(completions, answer):
    return [0.0 for _ in completions]

def short_reward(completions, **kwargs):
    return [1.0]

def needs_total(completions, total, **kwargs):   # a column by name: fine, if the rows have it
    return [0.0 for _ in completions]
"""


@pytest.fixture()
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "my_task.py").write_text(TASK_FILE)
    (tmp_path / "r.py").write_text(REWARDS_FILE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_task_file_passes_check_and_its_spec_is_stored_absolute(files: Path, capsys: pytest.CaptureFixture) -> None:
    from lowvram_r1.rewards.weighted import reward_list

    code, out, _ = run_cli(capsys, "tasks", "--check", "./my_task.py:TASK")
    assert code == 0, out
    assert "the task passes every check" in out and "reward right_reward" in out and "pickle" in out
    cfg = config.load(None, {"task.name": "./my_task.py:TASK", "task.rewards": {"./r.py:shout_reward": 0.2}})
    assert cfg.task.name == f"{files / 'my_task.py'}:TASK"
    assert f"{files / 'r.py'}:shout_reward" in cfg.task.rewards
    assert config.load(None, {"task.data_path": "./rows.jsonl"}).task.data_path == str(files / "rows.jsonl")
    config.save(cfg, files / "c.yaml")
    os.chdir("/")  # another folder: the stored spec still loads the same file
    again = config.load(files / "c.yaml")
    from lowvram_r1.tasks import get_task

    assert get_task(again.task.name).name == "plus_one"
    assert [r.name for r in reward_list(get_task(again.task.name), again.task, 128)][2] == "shout_reward"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "./missing.py:TASK"], "does not exist"),
        (["--task", "./my_task.py:NOPE"], "has no attribute NOPE"),
        (["--task", "./my_task.py:NOT_A_TASK"], "not a lowvram_r1.tasks.Task"),
        (["--task", "countdown", "--reward", "./r.py:two_args"], "a reward is def fn(completions, **kwargs)"),
        (["--task", "countdown", "--reward", "no_such_reward=1"], "unknown reward 'no_such_reward'"),
        (["--task", "countdown", "--reward", "x=abc"], "must be a number"),
        (["--task", "no_such_module_xyz:TASK"], "cannot import module no_such_module_xyz"),
    ],
)
def test_bad_specs_exit_2_saying_what_to_do(
    files: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "train", "--model", "tiny", *argv)
    assert code == 2 and message in err, err


def test_a_task_named_like_a_built_in_is_refused(files: Path, capsys: pytest.CaptureFixture) -> None:
    (files / "clash.py").write_text(TASK_FILE.replace('name="plus_one"', 'name="countdown"'))
    code, _, err = run_cli(capsys, "tasks", "--check", "./clash.py:TASK")
    assert code == 2 and "is a built-in task's" in err


def test_rewards_are_weighted_by_name_and_added_by_spec(files: Path) -> None:
    from lowvram_r1.rewards.weighted import reward_list
    from lowvram_r1.tasks import get_task

    cfg = config.load(
        None,
        {"task.name": "countdown", "task.rewards": {"format_reward": 0, "./r.py:shout_reward": 0.1}},
    )
    rewards = reward_list(get_task("countdown"), cfg.task, 128)
    assert [(r.name, r.weight) for r in rewards] == [
        ("format_reward", 0.0),
        ("equation_reward", 1.0),
        ("shout_reward", 0.1),
        ("check_reward", 0.0),
        ("reflection_reward", 0.0),
    ]
    # the older positional form still applies (a user's YAML is public), and names win over it
    old = config.load(None, {"task.name": "countdown", "task.reward_weights": [0.3, 2.0]})
    assert [r.weight for r in reward_list(get_task("countdown"), old.task, 128)][:2] == [0.3, 2.0]


def test_a_reward_that_raises_costs_only_its_samples_and_is_counted() -> None:
    from lowvram_r1.rewards.weighted import GuardedReward

    logged: dict[str, list[float]] = {}

    def fragile_reward(completions: list, **kwargs: object) -> list[float]:
        return [1.0 / len(c) for c in completions]

    guarded = GuardedReward(fragile_reward, "fragile_reward")
    values = guarded(["ab", "", "abcd"], log_metric=lambda k, v: logged.setdefault(k, []).append(v))
    assert values == [0.5, None, 0.25]
    assert logged == {"rewards/fragile_reward/errors": [1.0]}
    wrong = GuardedReward(lambda completions, **kw: [1.0], "short_reward")
    assert wrong(["a", "b"], log_metric=lambda k, v: logged.setdefault(k, []).append(v)) == [None, None]
    assert logged["rewards/short_reward/errors"] == [2.0]
    pickle.dumps(GuardedReward(len, "len_reward"))


def test_check_names_the_reward_and_the_input_that_failed(files: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "tasks", "--check", "./my_task.py:TASK", "--reward", "./r.py:fragile_reward")
    assert code == 1
    assert "FAIL  reward fragile_reward: on the empty completion: ZeroDivisionError" in out
    code, out, _ = run_cli(capsys, "tasks", "--check", "./my_task.py:TASK", "--reward", "./r.py:short_reward")
    assert code == 1 and "short_reward returned 1 values for 4 completions" in out
    code, out, _ = run_cli(capsys, "tasks", "--check", "./my_task.py:TASK", "--reward", "./r.py:needs_total")
    assert code == 1 and "missing 1 required positional argument: 'total' (the rows' columns: answer, prompt" in out


def test_score_uses_the_run_s_reward_list(files: Path, capsys: pytest.CaptureFixture) -> None:
    row = json.dumps({"question": "What is 1 + 1?", "answer": "2"})
    completion = "<think>\nx!\n</think>\n<answer>\n2\n</answer>"
    argv = ["score", "--task", "./my_task.py:TASK", "--row", row, "--completion", completion]
    code, out, _ = run_cli(capsys, *argv, "--reward", "ok_reward=0", "--reward", "./r.py:shout_reward=0.5")
    assert code == 0
    assert "shout_reward                    1.000  x 0.5" in out
    assert "weighted total                  1.500" in out  # 1.0 x 1 + 0.5 x 0 + 1 x 0.5


def test_the_dataset_task_maps_columns_and_checks_with_the_chosen_checker(tmp_path: Path) -> None:
    from lowvram_r1.tasks import Split, get_task

    data = tmp_path / "capitals.jsonl"
    data.write_text("".join(json.dumps({"country": c, "city": t}) + "\n" for c, t in [("France", "Paris")] * 3))
    task = get_task("dataset")
    options = task.resolve_options({"answer": "city", "template": "Capital of {country}?", "test_size": 1})
    rows = task.build_rows(Split("train", 0, 0, str(data), options))
    assert len(rows) == 2 and rows[0]["answer"] == "Paris" and "Capital of France?" in rows[0]["prompt"][-1]["content"]
    assert task.check("<think>\n.\n</think>\n<answer>\nparis.\n</answer>", rows[0])
    assert not task.check("<answer>Lyon</answer>", rows[0])
    number = {**rows[0], "answer": "1234", "checker": "number"}
    assert task.check("<think>\n.\n</think>\n<answer>\n$1,234.00\n</answer>", number)
    with pytest.raises(ValueError, match="checker must be one of"):
        task.build_rows(Split("train", 0, 0, str(data), {**options, "checker": "fuzzy"}))
    from lowvram_r1.tasks.base import TaskDataError

    with pytest.raises(TaskDataError, match="lack column"):
        task.build_rows(Split("train", 0, 0, str(data), {**options, "answer": "capital"}))


def test_the_panel_offers_only_tasks_given_at_start(files: Path) -> None:
    from lowvram_r1.ui import user_tasks

    with pytest.raises(ValueError, match="started with"):
        user_tasks.check_allowed(str(files / "my_task.py") + ":TASK")
    user_tasks.register(["./my_task.py:TASK"])
    user_tasks.check_allowed(str(files / "my_task.py") + ":TASK")
    assert ("plus_one (" + str(files / "my_task.py") + ":TASK)", str(files / "my_task.py") + ":TASK") in (
        user_tasks.choices()
    )
    user_tasks._GIVEN.clear()


def test_an_entry_point_task_is_listed_and_loads(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from lowvram_r1.tasks import get_task, user

    monkeypatch.syspath_prepend(str(files))
    point = EntryPoint(name="plus_one_ep", value="my_task:TASK", group=user.ENTRY_POINT_GROUP)
    monkeypatch.setattr(user, "entry_points", lambda group: [point] if group == user.ENTRY_POINT_GROUP else [])
    assert get_task("plus_one_ep").name == "plus_one"
    from lowvram_r1.cli.rewards import listed_tasks

    assert "plus_one_ep" in [name for name, _ in listed_tasks()]


def test_an_entry_point_named_like_a_built_in_is_left_out_with_a_warning(
    files: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from importlib.metadata import EntryPoint

    from lowvram_r1.cli.rewards import listed_tasks
    from lowvram_r1.tasks import TASKS, get_task, user
    from lowvram_r1.ui import user_tasks

    monkeypatch.syspath_prepend(str(files))
    point = EntryPoint(name="countdown", value="my_task:TASK", group=user.ENTRY_POINT_GROUP)
    monkeypatch.setattr(user, "entry_points", lambda group: [point] if group == user.ENTRY_POINT_GROUP else [])
    with caplog.at_level("WARNING"):
        names = [name for name, _ in listed_tasks()]
    assert names.count("countdown") == 1 and "countdown" not in user_tasks.allowed()
    assert get_task("countdown") is TASKS["countdown"]
    assert "named like a built-in task" in caplog.text and "my_task:TASK" in caplog.text


def test_score_total_equals_the_trainer_s_weighted_sum() -> None:
    """Issue 29: weights overridden by name and shaping on; TRL's own sum over the same list (nansum, weights)."""
    import torch
    from trl.rewards import get_repetition_penalty_reward, get_soft_overlong_punishment

    from lowvram_r1.rewards.weighted import reward_list, score_one, weighted_total
    from lowvram_r1.tasks import get_task

    cfg = config.load(
        None,
        {
            "task.name": "countdown",
            "task.rewards": {"format_reward": 0.7, "reflection_reward": 0.05},
            "task.overlong_buffer": 4,
            "task.ngram_penalty": -0.5,
            "generation.max_completion_length": 8,
        },
    )
    rewards = reward_list(get_task("countdown"), cfg.task, 8)
    assert [r.source for r in rewards].count("shaping") == 2
    assert {type(r.fn) for r in rewards if r.source == "shaping"} == {
        type(get_soft_overlong_punishment(8, 4)),
        type(get_repetition_penalty_reward()),
    }
    row = {"nums": [1, 2, 3], "target": 6}
    completion = "<think>\nwait 1 2 3\n</think>\n<answer>\n1 + 2 + 3\n</answer>"
    ids = [5, 6, 5, 6, 5, 6, 7]
    values, errors = score_one(rewards, completion, row, completion_ids=[ids])
    assert not errors
    per_func = torch.tensor([[float("nan") if v is None else v for v in values]])
    trl_total = float((per_func * torch.tensor([r.weight for r in rewards]).unsqueeze(0)).nansum(dim=1)[0])
    assert weighted_total(rewards, values) == pytest.approx(trl_total)
    assert values[2] != 0 and values[3] != 0  # both shaping rewards moved the total


# -- slow: user tasks and rewards train on the tiny model -------------------------------------------------------
EXAMPLES = ROOT / "examples" / "own_task"
SHORT = ["--max-steps", "2", "--batch-size", "4", "--num-generations", "4", "--eval-size", "4", "--no-progress"]


@pytest.mark.slow
def test_the_example_task_trains_resumes_from_another_folder_and_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from lowvram_r1.runs import RunDir
    from lowvram_r1.runs.reader import read_jsonl

    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "parity_task.py").write_text((EXAMPLES / "parity_task.py").read_text())
    monkeypatch.chdir(tmp_path / "work")
    run = tmp_path / "work" / "runs" / "parity"
    argv = ["train", "--task", "./parity_task.py:TASK", "--model", "tiny", *SHORT, "--output-dir", "runs/parity"]
    assert main([*argv, "--save-steps", "1"]) == 0
    monkeypatch.chdir(tmp_path)  # another folder: config.yaml holds the task file's absolute path
    assert main(["train", "--output-dir", str(run), "--resume", "--max-steps", "3", "--no-progress"]) == 0
    train = [r for r in read_jsonl(RunDir(run).metrics)[0] if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3] and all("rewards/parity_reward/mean" in r for r in train)
    assert all(r["rewards/parity_reward/errors"] == 0 for r in train)
    capsys.readouterr()
    row = json.dumps({"digits": [1, 2], "parity": "odd"})
    completion = "<think>\n1 + 2 = 3\n</think>\n<answer>\nodd\n</answer>"
    assert main(["score", "--config", str(run / "config.yaml"), "--row", row, "--completion", completion]) == 0
    assert "weighted total                  1.200" in capsys.readouterr().out


@pytest.mark.slow
def test_a_reward_file_on_countdown_and_a_raising_reward_train_with_errors_counted(
    small_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lowvram_r1.runs import RunDir
    from lowvram_r1.runs.reader import read_jsonl

    (tmp_path / "r.py").write_text(REWARDS_FILE)
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--task", "countdown", "--model", str(small_model), *SHORT, "--output-dir", "runs/r"]
    rewards = ["--reward", f"{EXAMPLES / 'rewards.py'}:brevity=0.1", "--reward", "./r.py:fragile_reward=0"]
    options = tmp_path / "o.yaml"
    options.write_text(
        "task:\n  options: {min_numbers: 3, max_numbers: 3, max_number: 9, max_target: 100, "
        "question_style: compact, test_size: 4}\n"
    )
    assert main([*argv, "--config", str(options), *rewards, "--max-completion-length", "48"]) == 0
    train = [r for r in read_jsonl(RunDir(tmp_path / "runs" / "r").metrics)[0] if r["kind"] == "train"]
    assert len(train) == 2 and all("rewards/brevity/mean" in r for r in train)
    assert all("rewards/fragile_reward/errors" in r for r in train)


@pytest.mark.slow
def test_the_dataset_task_trains_on_a_local_jsonl_with_renamed_columns(small_model: Path, tmp_path: Path) -> None:
    from lowvram_r1.runs import RunDir
    from lowvram_r1.runs.reader import read_jsonl

    data = tmp_path / "sums.jsonl"
    data.write_text("".join(json.dumps({"a": a, "b": b, "total": a + b}) + "\n" for a in range(8) for b in range(4)))
    recipe = tmp_path / "sums.yaml"
    recipe.write_text(
        f"task:\n  name: dataset\n  data_path: {data}\n  options:\n    template: 'What is {{a}} + {{b}}?'\n"
        "    answer: total\n    checker: number\n    test_size: 4\n"
    )
    run = tmp_path / "runs" / "sums"
    assert main(["train", "--config", str(recipe), "--model", str(small_model), *SHORT, "--output-dir", str(run)]) == 0
    train = [r for r in read_jsonl(RunDir(run).metrics)[0] if r["kind"] == "train"]
    assert len(train) == 2 and all("rewards/correctness_reward/mean" in r for r in train)


@pytest.mark.slow
def test_two_processes_train_a_user_task(small_model: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from lowvram_r1.runs import RunDir
    from lowvram_r1.runs.reader import read_jsonl

    (tmp_path / "my_task.py").write_text(TASK_FILE)
    run = tmp_path / "runs" / "two"
    command = [sys.executable, "-m", "lowvram_r1.cli", "train", "--task", "./my_task.py:TASK"]
    command += ["--model", str(small_model), *SHORT, "--num-processes", "2", "--output-dir", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    train = [r for r in read_jsonl(RunDir(run).metrics)[0] if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2] and config.load(run / "config.yaml").run.num_processes == 2


def test_eval_reports_a_reward_set_to_zero_by_name_as_a_monitor() -> None:
    from lowvram_r1.rewards.weighted import reward_list
    from lowvram_r1.tasks import get_task
    from lowvram_r1.train.evaluate import monitor_means

    task = get_task("countdown")
    cfg = config.load(None, {"task.name": "countdown", "task.rewards": {"format_reward": 0}})
    rewards = reward_list(task, cfg.task, 128)
    rows = [{"nums": [1, 2], "target": 3}]
    means = monitor_means(task, rows, ["p"], ["<think>\nx\n</think>\n<answer>\n1 + 2\n</answer>"], rewards)
    assert means == {"format": 1.0}
    assert monitor_means(task, rows, ["p"], ["x"]) == {}  # the task's own weights: no monitor


def test_the_panel_draws_a_failing_reward_s_error_count(tmp_path: Path) -> None:
    from lowvram_r1.runs import RunDir
    from lowvram_r1.runs.reader import RunCache
    from lowvram_r1.ui.plots import plot_rows

    run = RunDir(tmp_path / "run")
    run.path.mkdir(parents=True)
    records = [
        {"kind": "train", "step": s, "reward": 0.5, "rewards/mine/mean": 0.1, "rewards/mine/errors": float(s - 1)}
        for s in (1, 2)
    ] + [{"kind": "train", "step": 3, "reward": 0.5, "rewards/ok/mean": 1.0, "rewards/ok/errors": 0.0}]
    run.metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    cache = RunCache(run.path)
    cache.refresh()
    rows = plot_rows(cache, "reward")
    assert {series for _, _, series in rows} == {"total", "mine", "ok", "mine: errors"}
    assert (2, 1.0, "mine: errors") in rows
