"""The Runs tab: every run in a table, and Stop / Resume / Delete (asked twice) for the one picked.

    parts = build()                  # inside gr.Tabs: components by Layout field
    wire(ui, panel, runs_root)       # the timer refreshes the table and every tab's run pickers

The table repaints only when it changed; the run pickers of Runs, Compare and Try it only when the runs did.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from lowvram_r1.ui import views
from lowvram_r1.ui.panel import Panel
from lowvram_r1.ui.tabs import Layout


def build() -> dict[str, Any]:
    """The tab's components by :class:`Layout` field."""
    with gr.Tab("Runs", id="runs"):
        runs_table = gr.Dataframe(headers=views.RUN_COLUMNS, interactive=False, elem_id="runs-table", max_height=400)
        with gr.Row():
            selected = gr.Dropdown([], label="Selected run", scale=3, elem_id="selected-run")
            stop = gr.Button("■ Stop", elem_id="stop")
            resume = gr.Button("↻ Resume", elem_id="resume")
            delete = gr.Button("✕ Delete", variant="stop", elem_id="delete")
        with gr.Row(visible=False) as confirm_row:
            confirm_text = gr.Markdown()
            confirm = gr.Button("Yes, delete it", variant="stop", elem_id="confirm-delete")
            cancel = gr.Button("Cancel")
        runs_message = gr.Markdown(elem_id="runs-message")
        run_log = gr.Code(label="train.log (last lines)", language="shell", lines=8, interactive=False)
    return {
        "runs_table": runs_table,
        "selected": selected,
        "stop": stop,
        "resume": resume,
        "delete": delete,
        "confirm_row": confirm_row,
        "confirm_text": confirm_text,
        "confirm": confirm,
        "cancel": cancel,
        "runs_message": runs_message,
        "run_log": run_log,
    }


def _control(panel: Panel, action: str) -> Callable[[str | None], str]:
    """A button's callback: ``panel.<action>(name)``, its refusal shown, not raised."""

    def run_action(name: str | None) -> str:
        if not name:
            return "Pick a run first."
        try:
            return getattr(panel, action)(name)
        except ValueError as error:
            return f"**Refused:** {error}"

    return run_action


def wire(ui: Layout, panel: Panel, runs_root: Path) -> None:
    """The timer refreshes the table, the run pickers and the log; a row click picks its run; the buttons act on
    the picked run (Delete asks first)."""

    def refresh_runs(name: str | None, compared: list[str] | None, state: dict) -> list[Any]:
        table = panel.runs_table()
        names = list(table["run"])
        choices: list[Any] = [gr.skip()] * 3
        if tuple(names) != state.get("run_names"):  # new or deleted runs: refresh the run pickers
            choices[:2] = [
                gr.Dropdown(choices=names, value=name if name in names else (names[0] if names else None)),
                gr.Dropdown(choices=names, value=[n for n in compared or [] if n in names]),
            ]
        tryable = panel.tryable_runs()
        if tuple(tryable) != state.get("tryable"):  # a run's first checkpoint makes it tryable
            choices[2] = gr.Dropdown(choices=tryable)
        log = panel.log(name) if name in names else ""
        same = state.get("table") is not None and table.equals(state["table"])
        return [
            gr.skip() if same else table,
            *choices,
            log,
            {**state, "table": table, "run_names": tuple(names), "tryable": tuple(tryable)},
        ]

    runs_state = gr.State({})
    ui.timer.tick(
        refresh_runs,
        [ui.selected, ui.compare_runs, runs_state],
        [ui.runs_table, ui.selected, ui.compare_runs, ui.try_run, ui.run_log, runs_state],
        show_progress="hidden",
    )

    def pick_row(evt: gr.SelectData) -> Any:
        return evt.row_value[0] if evt.row_value else gr.skip()

    ui.runs_table.select(pick_row, None, ui.selected)
    ui.stop.click(_control(panel, "stop"), ui.selected, ui.runs_message)
    ui.resume.click(_control(panel, "resume"), ui.selected, ui.runs_message)
    ui.delete.click(
        lambda name: (
            gr.Row(visible=bool(name)),
            f"Delete **{runs_root}/{name}** and every file in it? This cannot be undone." if name else "",
        ),
        ui.selected,
        [ui.confirm_row, ui.confirm_text],
    )
    ui.confirm.click(_control(panel, "delete"), ui.selected, ui.runs_message).then(
        lambda: gr.Row(visible=False), None, ui.confirm_row
    )
    ui.cancel.click(lambda: gr.Row(visible=False), None, ui.confirm_row)
