"""The Compare tab: one metric of several runs on one plot.

parts = build()        # inside gr.Tabs: components by Layout field
wire(ui, panel)        # redrawn when the runs or the metric change, and on the timer
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from lowvram_r1.ui.panel import Panel
from lowvram_r1.ui.plots import COMPARE_METRICS
from lowvram_r1.ui.tabs import Layout


def build() -> dict[str, Any]:
    """The tab's components by :class:`Layout` field."""
    with gr.Tab("Compare", id="compare"):
        with gr.Row():
            compare_runs = gr.Dropdown([], multiselect=True, label="Runs (two or more)", scale=3)
            compare_metric = gr.Dropdown(list(COMPARE_METRICS), value="reward", label="Metric")
        compare_plot = gr.LinePlot(x="step", y="value", color="run", height=360, x_title="step")
    return {"compare_runs": compare_runs, "compare_metric": compare_metric, "compare_plot": compare_plot}


def wire(ui: Layout, panel: Panel) -> None:
    """Redraw the plot when the runs or the metric change, and on every timer tick (the runs go on training)."""

    def refresh_compare(names: list[str] | None, metric: str) -> Any:
        return panel.compare(list(names or []), metric)

    for component in (ui.compare_runs, ui.compare_metric):
        component.change(refresh_compare, [ui.compare_runs, ui.compare_metric], ui.compare_plot)
    ui.timer.tick(refresh_compare, [ui.compare_runs, ui.compare_metric], ui.compare_plot, show_progress="hidden")
