"""The panel's tabs, one module each: ``launch``, ``live``, ``runs``, ``compare``, ``try_it``. Each builds its
tab's components (``build``, inside the caller's ``gr.Tabs``) and wires its events (``wire``); :class:`Layout`
holds every component a callback reads or writes, so a tab's events can update another tab (a started run is
followed in Live).

    ui = lowvram_r1.ui.layout.build_layout(runs_root, recipes, first_recipe, values)   # every tab's build
    launch.wire(app, ui, panel, values); live.wire(ui, panel); ...                     # lowvram_r1.ui.app
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Layout:
    """Every component a callback reads or writes; ``knobs`` and ``plots`` are dicts by name."""

    timer: Any
    painted: Any
    tabs: Any
    recipe: Any
    task: Any
    model: Any
    knobs: Any
    run_name: Any
    start: Any
    launch_message: Any
    command: Any
    memory: Any
    live_run: Any
    follow: Any
    live_status: Any
    live_eval: Any
    plots: Any
    step: Any
    correct: Any
    reward_min: Any
    reward_max: Any
    steps_info: Any
    cards: Any
    runs_table: Any
    selected: Any
    stop: Any
    resume: Any
    delete: Any
    confirm_row: Any
    confirm_text: Any
    confirm: Any
    cancel: Any
    runs_message: Any
    run_log: Any
    compare_runs: Any
    compare_metric: Any
    compare_plot: Any
    try_run: Any
    question: Any
    seed: Any
    ask: Any
    answer: Any
    health: Any = None  # the run-health card (lowvram_r1.ui.health); its "click" event carries a finding's id
    smoothing: Any = None
    order: Any = None
