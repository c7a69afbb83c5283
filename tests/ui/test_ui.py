"""The panel without a browser: run readers, the command builder and its guards, run controls, serving rules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lowvram_r1.cli import build_parser, main, overrides_from
from lowvram_r1.recipes import PACKAGE_RECIPES
from lowvram_r1.runs import RunDir, append_jsonl, write_atomic
from lowvram_r1.runs.lifecycle import RunSession
from lowvram_r1.runs.reader import RunCache
from lowvram_r1.ui import views
from lowvram_r1.ui.controls import Launcher, log_tail
from lowvram_r1.ui.launch_command import LaunchRequest, build_launch, list_recipes
from lowvram_r1.ui.plots import plot_rows
from lowvram_r1.ui.serve import check_exposure, parse_auth
from tests.paths import ROOT

CONFIGS = PACKAGE_RECIPES  # the shipped recipes: the panel lists them by name
RECIPE = "cpu-demo"


def completion(step: int, reward: float, correct: bool, text: str = "<think>a</think><answer>1 + 2</answer>") -> dict:
    return {
        "step": step,
        "prompt": "user: q",
        "completion": text,
        "rewards": {"format_reward": 1.0},
        "reward": reward,
        "advantage": 0.5,
        "correct": correct,
    }


def train_line(step: int, **extra: float) -> dict:
    return {
        "kind": "train",
        "step": step,
        "reward": 0.1 * step,
        "reward_std": 0.2,
        "kl": 0.01,
        "completions/mean_length": 30,
        "train_accuracy": 0.5,
        "rewards/format_reward/mean": 0.9,
        "rewards/equation_reward/mean": 0.3,
        "rewards/check_reward/mean": 0.5,
        "rewards/reflection_reward/mean": 0.1,
        **extra,
    }


SESSIONS: dict[Path, RunSession] = {}


@pytest.fixture
def run(tmp_path: Path):  # noqa: ANN201 - a generator fixture
    """A running run: this test process holds its trainer lock, as a live trainer would."""
    run = RunDir(tmp_path / "runs" / "r1")
    run.path.mkdir(parents=True)
    with RunSession(run) as session:  # claims the empty folder (marks it ours), then says it runs
        run.write_status(state="running", step=0, max_steps=10, task="countdown", model="tiny", pid=os.getpid())
        SESSIONS[run.path] = session
        yield run
    SESSIONS.pop(run.path, None)


def end_trainer(run: RunDir) -> None:
    """The fixture's trainer ends: its lock is released."""
    session = SESSIONS.pop(run.path)
    session.__exit__(None, None, None)
    session.__exit__ = lambda *_: None  # the fixture's own exit has nothing left to release


# -- readers ------------------------------------------------------------------------------------------------------
def test_cache_reads_only_what_is_new_and_waits_for_partial_lines(run: RunDir) -> None:
    cache = RunCache(run.path)
    append_jsonl(run.completions, [completion(1, 0.0, False), completion(1, 1.1, True)])
    append_jsonl(run.metrics, [train_line(1)])
    assert cache.refresh() == 3
    assert cache.refresh() == 0 and cache.version == 1  # nothing new: nothing re-read, nothing to repaint
    with open(run.completions, "a") as handle:
        handle.write(json.dumps(completion(2, 0.5, False))[:20])  # a writer caught mid-line
    assert cache.refresh() == 0
    with open(run.completions, "a") as handle:
        handle.write(json.dumps(completion(2, 0.5, False))[20:] + "\n")
    assert cache.refresh() == 1
    assert list(cache.index.steps) == [1, 1, 2]
    assert cache._completions_scan.offset == run.completions.stat().st_size


def test_cache_starts_over_when_resume_rewrites_the_files(run: RunDir) -> None:
    cache = RunCache(run.path)
    append_jsonl(run.completions, [completion(s, 0.0, False) for s in (1, 2, 3)])
    cache.refresh()
    write_atomic(run.completions, json.dumps(completion(1, 0.0, False)) + "\n")  # truncate_after(…, 1)
    cache.refresh()
    assert list(cache.index.steps) == [1]


def test_completion_filters(run: RunDir) -> None:
    append_jsonl(
        run.completions,
        [
            completion(1, 0.0, False),
            completion(1, 1.1, True),
            completion(2, 0.1, False),
            completion(2, 1.1, True),
            completion(2, 0.6, False),
        ],
    )
    cache = RunCache(run.path)
    cache.refresh()
    assert [r["step"] for r in cache.completions()] == [2, 2, 2]  # default: the latest step
    assert [r["reward"] for r in cache.completions(step=1)] == [0.0, 1.1]
    assert [r["reward"] for r in cache.completions(correct="wrong")] == [0.1, 0.6]
    assert [r["reward"] for r in cache.completions(correct="correct")] == [1.1]
    assert [r["reward"] for r in cache.completions(reward_min=0.5, reward_max=1.0)] == [0.6]
    assert [r["reward"] for r in cache.completions(limit=2)] == [1.1, 0.6]  # the newest two, in file order
    assert cache.steps() == (1, 2)


def test_plot_series_and_compare(run: RunDir, tmp_path: Path) -> None:
    append_jsonl(
        run.metrics,
        [
            {"kind": "eval", "step": 0, "accuracy": 0.1},
            train_line(1),
            train_line(2),
            {"kind": "eval", "step": 2, "accuracy": 0.4},
        ],
    )
    cache = RunCache(run.path)
    cache.refresh()
    series = {s for _, _, s in plot_rows(cache, "reward")}
    assert series == {"total", "format_reward", "equation_reward"}  # monitors have plots of their own
    assert {s for _, _, s in plot_rows(cache, "accuracy")} == {"training batch", "held-out"}
    assert plot_rows(cache, "reflection") == [(1, 0.1, "reflection rate"), (2, 0.1, "reflection rate")]
    assert cache.metric_rows("eval:accuracy") == [(0, 0.1), (2, 0.4)]
    pytest.importorskip("pandas")
    from lowvram_r1.ui.panel import Panel

    frame = Panel(run.path.parent, CONFIGS).compare(["r1"], "held-out accuracy")
    assert list(frame.itertuples(index=False, name=None)) == [(0, 0.1, "r1"), (2, 0.4, "r1")]


def test_views_set_think_and_answer_apart_and_escape_model_output() -> None:
    assert views.split_completion("<think>2+3=5</think> <answer>2 + 3</answer>") == {
        "think": "2+3=5",
        "answer": "2 + 3",
        "rest": "",
    }
    assert views.split_completion("no tags")["rest"] == "no tags"
    nested = views.split_completion("x<think>a<answer>b</think> y <answer>c</answer>z")  # a model's muddle
    assert nested == {"think": "a<answer>b", "answer": "c", "rest": "x y z"}
    page = views.completion_cards([completion(1, 1.0, True, "<think><script>alert(1)</script></think><answer>x")])
    assert "<script>" not in page and "&lt;script&gt;" in page and "correct" in page


def test_eval_results_show_beside_the_run(run: RunDir) -> None:
    pytest.importorskip("pandas")
    from lowvram_r1.ui.panel import Panel

    panel = Panel(run.path.parent, CONFIGS)
    empty = panel.live("r1")
    assert "No eval.json yet" in empty.evaluation
    assert "beta > 0" in empty.titles["kl"] and "no data yet" in empty.titles["reward"]  # empty plots say why
    (run.path / "eval.json").write_text(
        json.dumps({"accuracy": 0.25, "pass@4": 0.5, "maj@4": 0.3, "format_rate": 0.9, "n": 200.0, "split": "test"})
    )
    shown = panel.live("r1").evaluation
    assert "200 problems" in shown and "accuracy **25.0%**" in shown and "pass@4 **50.0%**" in shown


def test_runs_table_row(run: RunDir) -> None:
    metrics = [
        {"kind": "eval", "step": 0, "accuracy": 0.1},
        train_line(3),
        {"kind": "eval", "step": 3, "accuracy": 0.25},
    ]
    row = views.run_row("r1", "running", run.status(), metrics)
    assert row == ["r1", "running", "3/10", "0.300", "50.0%", "10.0% → 25.0%", "countdown", "tiny"]


# -- command builder ----------------------------------------------------------------------------------------------
def parsed(args: list[str]) -> dict:
    return overrides_from(build_parser().parse_args(args))


def test_command_carries_changed_knobs_as_single_flag_arguments(tmp_path: Path) -> None:
    values = {
        "task": "countdown",
        "model": "tiny",
        "learning_rate": 3e-3,  # not the recipe's: a changed knob
        "max_steps": 20.0,
        "lora_r": 16,
        "loss_type": "dr_grpo",
        "beta": 0.04,
    }
    launch = build_launch(LaunchRequest("my-run", RECIPE, values), tmp_path / "runs", CONFIGS)
    assert launch.args[:3] == ["train", "--config", RECIPE]
    got = parsed(launch.args)
    assert got == {
        "training.learning_rate": 3e-3,
        "training.max_steps": 20,
        "training.loss_type": "dr_grpo",
        "training.beta": 0.04,
        "run.output_dir": str(tmp_path / "runs" / "my-run"),
    }  # unchanged: left out
    assert launch.cfg.training.max_steps == 20 and launch.display.startswith("lowvram-r1 train --config ")


def test_a_multi_gpu_machine_offers_one_process_per_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio as gr

    import lowvram_r1.ui.panel as panel_module
    from lowvram_r1.ui.app import build_app
    from lowvram_r1.ui.memory import Gpu

    launch = build_launch(LaunchRequest("multi", RECIPE, {"num_processes": 2.0}), tmp_path / "runs", CONFIGS)
    assert parsed(launch.args)["run.num_processes"] == 2 and launch.cfg.run.num_processes == 2
    for gpus, shown in ((None, False), (Gpu("NVIDIA A100", 80.0, 1), False), (Gpu("NVIDIA A100", 80.0, 4), True)):
        monkeypatch.setattr(panel_module, "detect_gpu", lambda gpus=gpus: gpus)
        app = build_app(tmp_path / "runs", CONFIGS)
        [field] = [b for b in app.blocks.values() if isinstance(b, gr.Number) and b.elem_id == "num-processes"]
        assert field.visible is shown and field.maximum == (gpus.count if gpus else 1)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"model": "--max-steps=1"}, "cannot start with '-'"),
        ({"model": "tiny\n--max-steps 1"}, "control characters"),
        ({"loss_type": "dapo --beta 1"}, "must be one of"),
        ({"num_generations": 3}, "divisible by num_generations"),
        ({"learning_rate": -1.0}, r"learning_rate \(--learning-rate\) must be a number in \(0, 1\]"),
        ({"task": "nope"}, "unknown task"),
        ({"extra_flags": "--resume"}, "unknown form field"),
    ],
)
def test_bad_form_values_are_refused_with_a_message(tmp_path: Path, values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_launch(LaunchRequest("r", RECIPE, values), tmp_path / "runs", CONFIGS)
    assert not (tmp_path / "runs").exists()  # nothing was created, nothing started


@pytest.mark.parametrize("recipe", list_recipes(CONFIGS))
def test_every_recipe_fills_the_form_and_builds_its_command(tmp_path: Path, recipe: str) -> None:
    from lowvram_r1.ui.launch_command import knob_values, recipe_config

    values = knob_values(recipe_config(recipe))  # what the form shows for it, sent back unchanged
    launch = build_launch(LaunchRequest("r", recipe, values), tmp_path, CONFIGS)
    assert launch.args == ["train", "--config", recipe, f"--output-dir={tmp_path / 'r'}", "--no-progress"]


def test_spaces_in_a_value_stay_inside_that_value(tmp_path: Path) -> None:
    launch = build_launch(LaunchRequest("r", RECIPE, {"model": "my model --max-steps 1"}), tmp_path, CONFIGS)
    got = parsed(launch.args)
    assert got["model.name"] == "my model --max-steps 1" and "training.max_steps" not in got


@pytest.mark.parametrize("name", ["../escape", "a/b", "a b", "x;rm -rf", "-flag", ""])
def test_unsafe_run_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="run name"):
        build_launch(LaunchRequest(name, RECIPE, {}), tmp_path, CONFIGS)


@pytest.mark.parametrize("recipe", ["/etc/passwd", "configs/../pyproject.toml", "configs/missing.yaml"])
def test_only_listed_recipes_are_accepted(tmp_path: Path, recipe: str) -> None:
    with pytest.raises(ValueError, match="recipe"):
        build_launch(LaunchRequest("r", recipe, {}), tmp_path, CONFIGS)


def test_an_existing_run_directory_is_refused(run: RunDir) -> None:
    with pytest.raises(ValueError, match="already exists"):
        build_launch(LaunchRequest("r1", None, {}), run.path.parent, CONFIGS)


# -- run controls --------------------------------------------------------------------------------------------------
def test_a_run_that_fails_to_start_shows_failed_with_its_reason(tmp_path: Path) -> None:
    launcher = Launcher(tmp_path / "runs", cwd=ROOT)
    launch = build_launch(
        LaunchRequest("bad", RECIPE, {"model": str(tmp_path / "no-such-model")}), tmp_path / "runs", CONFIGS
    )
    pid = launcher.start(launch)
    assert os.getsid(pid) == pid  # its own session: it outlives the panel (and a closed browser tab)
    assert launcher.state(launch.run_dir) in ("starting", "failed")
    deadline = time.monotonic() + 120
    while launcher.live(launch.run_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert launcher.state(launch.run_dir) == "failed"
    assert "no-such-model" in log_tail(launch.run_dir)


def test_stop_writes_the_stop_file_for_a_training_run(run: RunDir) -> None:
    launcher = Launcher(run.path.parent)
    assert "saves a checkpoint" in launcher.stop(run.path)
    assert run.stop_file.exists()
    run.stop_file.unlink()  # the trainer clears a stale STOP when it starts: the panel asks again
    launcher.keep_stop_requests()
    assert run.stop_file.exists()
    run.write_status(state="stopped")
    end_trainer(run)
    with pytest.raises(ValueError, match="not running"):
        launcher.stop(run.path)


def test_stop_before_training_terminates_the_process(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "runs" / "loading")
    run.path.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    (run.path / "launch.json").write_text(json.dumps({"pid": sleeper.pid}))
    launcher = Launcher(run.path.parent)
    assert launcher.state(run.path) == "failed"  # launch.json alone proves nothing: not this panel's process
    launcher.processes[run.path] = sleeper  # this panel started it (what Launcher.start records)
    assert launcher.state(run.path) == "starting"
    launcher.stop(run.path)
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert run.status()["state"] == "stopped" and launcher.state(run.path) == "stopped"


def test_delete_refuses_live_runs_and_paths_outside_the_runs_folder(run: RunDir, tmp_path: Path) -> None:
    launcher = Launcher(run.path.parent)
    with pytest.raises(ValueError, match="still running"):
        launcher.delete(run.path)  # a live trainer holds its lock
    with pytest.raises(ValueError, match="not a run under"):
        launcher.delete(tmp_path)
    run.write_status(state="finished", pid=None)
    end_trainer(run)
    launcher.delete(run.path)
    assert not run.path.exists()


def test_resume_needs_a_checkpoint_and_continues_the_run_with_its_own_config(run: RunDir) -> None:
    from lowvram_r1 import config
    from lowvram_r1.ui.launch_command import resume_launch

    config.save(config.load(RECIPE), run.config)
    with pytest.raises(ValueError, match="no complete checkpoint"):
        resume_launch(run.path)
    checkpoint = run.checkpoints / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "COMPLETE").write_text("2")
    launch = resume_launch(run.path)
    assert parsed(launch.args) == {"run.output_dir": str(run.path), "run.resume": True}
    with pytest.raises(ValueError, match="still running"):  # a live trainer holds the run's lock (the fixture's)
        Launcher(run.path.parent).resume(run.path)


def test_a_dead_running_run_is_shown_as_died(run: RunDir) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    end_trainer(run)
    run.write_status(pid=int(done.stdout))  # status says running, but no process holds the run's lock
    assert Launcher(run.path.parent).state(run.path) == "died"


# -- memory plan ---------------------------------------------------------------------------------------------------
def test_memory_plan_says_whether_the_form_fits_the_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lowvram_r1 import config
    from lowvram_r1.ui.memory import Gpu, detect_gpu, plan_markdown

    cfg = config.load(None, {"model": "Qwen/Qwen2.5-1.5B-Instruct", "load_in_4bit": True})
    assert "fits** your T4" in plan_markdown(cfg, Gpu("T4", 15.0))
    assert "does NOT fit** your tiny card" in plan_markdown(cfg, Gpu("tiny card", 1.0))
    assert "No GPU detected" in plan_markdown(cfg, None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi anywhere
    assert detect_gpu() is None
    pytest.importorskip("pandas")
    from lowvram_r1.ui.panel import Panel

    panel = Panel(tmp_path, CONFIGS)
    assert "base weights" in panel.memory_plan(RECIPE, {"lora_r": 8})
    assert "fix the form first" in panel.memory_plan(RECIPE, {"num_generations": 3})


# -- serving -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--share"], ["--host", "0.0.0.0"], ["--host", "example.org"], ["--auth", "x"]])
def test_exposed_panel_without_auth_is_refused(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["ui", *argv]) == 2
    err = capsys.readouterr().err
    assert "--auth" in err


def test_python_app_py_is_the_ui_command() -> None:
    done = subprocess.run([sys.executable, "app.py", "--share"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and "--share publishes the panel" in done.stderr


def test_exposure_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    check_exposure("127.0.0.1", False, None)
    check_exposure("localhost", False, None)
    check_exposure("::1", False, None)
    check_exposure("0.0.0.0", True, ("me", "secret"))
    assert parse_auth("me:se:cret") == ("me", "se:cret")
    monkeypatch.setenv("LOWVRAM_R1_UI_AUTH", "me:secret")
    with pytest.raises(ValueError):
        check_exposure("0.0.0.0", False, None)  # the variable is read by cmd_ui, not by the rule itself


def test_the_panel_process_never_imports_the_model_stack(run: RunDir) -> None:
    pytest.importorskip("gradio")
    append_jsonl(run.completions, [completion(1, 1.0, True)])
    append_jsonl(run.metrics, [train_line(1)])
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from lowvram_r1.ui.app import build_app\nfrom lowvram_r1.ui.panel import Panel\n"
        f"root = Path({str(run.path.parent)!r})\n"
        f"build_app(root, Path({str(CONFIGS)!r}))\n"
        f"panel = Panel(root, Path({str(CONFIGS)!r}))\npanel.runs_table(); view = panel.live('r1')\n"
        f"assert 'base weights' in panel.memory_plan({RECIPE!r}, {{}})\n"
        "assert 'answer' in view.cards\n"
        "print([m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_status_line_says_how_long_ago_in_units_a_person_reads() -> None:
    from lowvram_r1.ui.views import ago

    assert [ago(s) for s in (-3, 12, 300, 17150, 3 * 86400)] == [
        "0 s ago",
        "12 s ago",
        "5 min ago",
        "4.8 h ago",
        "3.0 days ago",
    ]
