"""The Gradio panel: Launch, Live, Runs, Compare and Try-it tabs over :class:`~lowvram_r1.ui.panel.Panel`.

    lowvram-r1 ui            # or: python app.py
    app = build_app(Path("runs"), PACKAGE_RECIPES); app.launch(**launch_kwargs())

Each tab builds its components and wires its events in ``ui/tabs/<tab>.py`` (``layout.py`` puts the tabs
together); what each callback computes lives in ``panel.py`` (tested without a browser). A 2-second timer refreshes
the live view and the runs table; a refresh that finds nothing new repaints nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from lowvram_r1.ui import health, views
from lowvram_r1.ui.launch_command import knob_values, list_recipes, recipe_config
from lowvram_r1.ui.layout import build_layout
from lowvram_r1.ui.panel import Panel
from lowvram_r1.ui.tabs import compare, launch, live, runs, try_it
from lowvram_r1.ui.tabs.launch import NO_RECIPE


def launch_kwargs() -> dict[str, Any]:
    """Theme and CSS go to ``launch()`` in Gradio 6."""
    return {"theme": gr.themes.Soft(primary_hue="indigo", neutral_hue="slate"), "css": views.CSS + health.CSS}


def build_app(runs_root: Path, configs_root: Path, cwd: Path | None = None, max_runs: int | None = None) -> gr.Blocks:
    """The panel's Blocks; ``max_runs`` caps the runs training at once (None: one per GPU, one on a CPU)."""
    panel = Panel(runs_root, configs_root, cwd, max_runs)
    recipes = list_recipes(configs_root)
    first_recipe = next((r for r in recipes if r.endswith("cpu-demo.yaml")), recipes[0] if recipes else NO_RECIPE)
    v = knob_values(recipe_config(None if first_recipe == NO_RECIPE else first_recipe))

    with gr.Blocks(title="lowvram-r1 panel", analytics_enabled=False) as app:
        gr.Markdown(
            "## lowvram-r1 · GRPO reasoning panel\n"
            f"Launch R1-style runs, watch rewards and completions live, compare runs, try the result. "
            f"Runs live in `{runs_root}/`."
        )
        ui = build_layout(runs_root, recipes, first_recipe, v, panel.gpu.count if panel.gpu else 0)
        launch.wire(app, ui, panel, v)
        live.wire(ui, panel)
        runs.wire(ui, panel, runs_root)
        compare.wire(ui, panel)
        try_it.wire(ui, panel, cwd)
    return app
