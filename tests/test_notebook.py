"""The Colab notebook: stored valid and without outputs, thin (no training logic), and executed top to bottom on
CPU with the tiny model, the way Colab would run it but with CI's parameters injected after its parameters cell
(what papermill does)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "lowvram_r1_colab.ipynb"

nbformat = pytest.importorskip("nbformat", reason="the notebook extra is not installed: pip install -e '.[notebook]'")


def code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_notebook_is_valid_and_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, "clear outputs before committing the notebook"
    assert NOTEBOOK.stat().st_size < 50_000


def test_notebook_holds_no_training_or_reward_logic() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    source = "\n".join(cell.source for cell in code_cells(nb))
    assert not re.search(r"^\s*(def|class) ", source, re.MULTILINE), "helpers belong in lowvram_r1.notebook"
    for heavy in ("GRPOTrainer", "GRPOConfig", "_reward", "FastLanguageModel", "import torch", "import trl"):
        assert heavy not in source


def test_notebook_has_parameters_cell_with_colab_forms() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in code_cells(nb) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert 'TASK = "gsm8k"  # @param' in tagged[0].source
    assert "Qwen2.5-1.5B-Instruct" in nbformat.writes(nb)  # the T4 default named for the reader


def test_notebook_installs_the_package_and_needs_no_clone() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    source = "\n".join(cell.source for cell in code_cells(nb))
    assert 'PACKAGE = "lowvram-r1 @ git+https://github.com/' in source and "install_plan(" in source
    for clone_only in ("git clone", "os.chdir", "configs/", "%cd"):
        assert clone_only not in source, f"the notebook still relies on a clone: {clone_only!r}"


@pytest.mark.slow
def test_notebook_executes_on_cpu_with_the_tiny_model(tmp_path: Path, small_model: Path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    parameters = {
        "TASK": "countdown",
        "RECIPE": "cpu-demo",  # a recipe shipped in the package, by name
        "MODEL": str(small_model),  # the session's small tiny model: nothing to build inside the notebook
        "MAX_STEPS": 4,
        "EVAL_ROWS": 8,
        "RUN_NAME": "notebook-ci",
        "EXTRA": {"per_device_train_batch_size": 8, "num_generations": 4, "save_steps": 2},
    }
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()))
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(index + 1, injected)

    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    run_dir = tmp_path / "runs" / "notebook-ci"
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert (run_dir / "merged-16bit" / "config.json").is_file()
    outputs = "\n".join(
        out.get("text", "") + "".join(out.get("data", {}).get("text/markdown", ""))
        for cell in code_cells(nb)
        for out in cell.outputs
    )
    assert "| metric | before | after | change |" in outputs  # the before/after table was shown
    assert "A:" in outputs and "GGUF export needs a CUDA GPU" in outputs
    shown_plot = any("image/png" in out.get("data", {}) for cell in code_cells(nb) for out in cell.outputs)
    assert shown_plot, "the live training view drew no figure"


def test_run_view_reads_only_what_was_appended_and_draws(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from lowvram_r1.notebook import RunView
    from lowvram_r1.runs import append_jsonl

    run = tmp_path / "run"
    run.mkdir()
    rewards = {"rewards/format_reward/mean": 1.0, "rewards/check_reward/mean": 0.5}
    append_jsonl(run / "metrics.jsonl", [{"kind": "eval", "step": 0, "accuracy": 0.1}])
    append_jsonl(
        run / "metrics.jsonl", [{"kind": "train", "step": s, "reward": s / 30, **rewards} for s in range(1, 31)]
    )
    append_jsonl(run / "completions.jsonl", [{"step": 30, "completion": f"c{i}", "reward": 1.0} for i in range(5)])
    view = RunView(run)
    view.refresh()
    assert len(view.train) == 30 and len(view.evals) == 1
    assert [c["completion"] for c in view.latest_completions] == ["c3", "c4"]
    append_jsonl(run / "metrics.jsonl", [{"kind": "train", "step": 31, "reward": 1.0}])
    view.refresh()
    assert len(view.train) == 31 and view.series("reward")[0][-1] == 31
    assert [c["completion"] for c in view.latest_completions] == ["c3", "c4"]  # nothing new: the last ones stay
    figure = view.figure()
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert "format_reward" in labels and "check_reward" not in labels  # monitors are plotted elsewhere
    assert any(label.startswith("total, mean of") for label in labels)  # 31 noisy points get a moving average


def test_the_notebook_and_the_panel_draw_the_same_series(tmp_path: Path) -> None:
    """One definition of each plot's series (runs/series.py): the notebook's axes show the panel's lines, same names."""
    pytest.importorskip("matplotlib")
    from lowvram_r1.notebook import RunView
    from lowvram_r1.runs import append_jsonl
    from lowvram_r1.runs.reader import RunCache
    from lowvram_r1.ui.plots import plot_rows

    run = tmp_path / "run"
    run.mkdir()
    rewards = {
        "rewards/format_reward/mean": 1.0,
        "rewards/check_reward/mean": 0.5,
        "rewards/reflection_reward/mean": 0.1,
        "rewards/search_count_reward/mean": 2.0,  # a search monitor: the panel's search plot, not the reward plot
        "train_accuracy": 0.5,
        "completions/mean_length": 40.0,
    }
    append_jsonl(run / "metrics.jsonl", [{"kind": "eval", "step": 0, "accuracy": 0.1}])
    append_jsonl(run / "metrics.jsonl", [{"kind": "train", "step": s, "reward": 0.5, **rewards} for s in (1, 2)])
    view = RunView(run)
    view.refresh()
    reward_ax, accuracy_ax, length_ax, reflection_ax = view.figure().axes
    cache = RunCache(run)
    cache.refresh()

    def panel(plot: str) -> list[str]:
        return list(dict.fromkeys(series for _, _, series in plot_rows(cache, plot)))

    def drawn(ax: object) -> list[str]:
        return [line.get_label() for line in ax.get_lines()]  # type: ignore[attr-defined]

    assert drawn(reward_ax) == panel("reward") == ["total", "format_reward"]
    assert drawn(accuracy_ax) == panel("accuracy") == ["training batch", "held-out"]
    assert drawn(length_ax) == panel("completion_length")
    assert reflection_ax.get_ylabel() == panel("reflection")[0]


def test_before_after_table(tmp_path: Path) -> None:
    from lowvram_r1.notebook import before_after

    (tmp_path / "a.json").write_text(json.dumps({"accuracy": 0.1, "mean_length": 50.0, "n": 8.0, "seconds": 3.0}))
    (tmp_path / "b.json").write_text(json.dumps({"accuracy": 0.25, "mean_length": 42.5, "n": 8.0, "seconds": 2.0}))
    table = before_after(tmp_path / "a.json", tmp_path / "b.json").splitlines()
    assert table[2] == "| accuracy | 10.0% | 25.0% | +15.0 pts |"
    assert table[3] == "| mean_length | 50.0 | 42.5 | -7.5 |"
    assert len(table) == 4  # counts and timings are not compared
