"""The panel's components, tab by tab (``lowvram_r1.ui.tabs``): what is on screen. :mod:`lowvram_r1.ui.app` wires
what they do.

    with gr.Blocks() as blocks:
        ui = build_layout(runs_root, recipes, first_recipe, knob_values(...))
        ui.start.click(...)

Element ids (``elem_id``) are what the browser test (tests/ui/test_ui_browser.py) finds components by.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from lowvram_r1.ui.tabs import Layout, compare, launch, live, runs, try_it

REFRESH_S = 2.0


def build_layout(runs_root: Path, recipes: list[str], first_recipe: str, v: dict[str, Any], gpus: int = 0) -> Layout:
    """Create the components inside the caller's ``gr.Blocks``; ``v``: the first recipe's knob values; ``gpus``:
    the machine's GPUs (with several, the form offers one training process per GPU)."""
    timer = gr.Timer(REFRESH_S)
    painted = gr.State({})
    with gr.Tabs() as tabs:
        parts = {
            **launch.build(recipes, first_recipe, v, gpus),
            **live.build(),
            **runs.build(),
            **compare.build(),
            **try_it.build(),
        }
    return Layout(timer=timer, painted=painted, tabs=tabs, **parts)
