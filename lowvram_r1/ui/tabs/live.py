"""The Live tab: one run's status, evaluation, health card, metric plots and completions, refreshed by the timer.

    parts = build()            # inside gr.Tabs: components by Layout field
    wire(ui, panel)            # the timer and every filter refresh it; a health finding sets the filters

A refresh that finds nothing new (``Panel.live``'s key) repaints nothing; "follow" switches to the newest run.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr

from lowvram_r1.ui import health as health_view
from lowvram_r1.ui.panel import Panel
from lowvram_r1.ui.plots import PLOT_TITLES, PLOTS
from lowvram_r1.ui.tabs import Layout

RATE_PLOTS = ("accuracy", "reflection")  # shares: drawn on a fixed 0-1 axis


def build() -> dict[str, Any]:
    """The tab's components by :class:`Layout` field."""
    with gr.Tab("Live", id="live"):
        with gr.Row():
            live_run = gr.Dropdown([], label="Run", scale=3, elem_id="live-run")
            follow = gr.Checkbox(True, label="Follow the newest run", scale=1)
        live_status = gr.Markdown(elem_id="live-status", elem_classes="lr-status")
        live_eval = gr.Markdown()
        health = gr.HTML(elem_id="health", js_on_load=health_view.CLICK_JS)
        smoothing = gr.Slider(
            0,
            0.99,
            value=0.0,
            step=0.01,
            label="Smoothing (exponential moving average; 0 = raw)",
            elem_id="smoothing",
        )
        plots = {}
        for row in (PLOTS[:3], PLOTS[3:6], PLOTS[6:]):
            with gr.Row():
                for name in row:
                    plots[name] = gr.LinePlot(
                        x="step",
                        y="value",
                        color="series",
                        title=PLOT_TITLES[name],
                        height=230,
                        x_title="step",
                        y_title="",
                        show_label=False,
                        elem_id=f"plot-{name}",
                        y_lim=[0, 1] if name in RATE_PLOTS else None,  # a flat 0 read "0.000000" otherwise
                    )
        gr.Markdown("#### Completions")
        with gr.Row():
            step = gr.Textbox(label="Step", placeholder="latest", elem_id="filter-step")
            correct = gr.Radio(["all", "correct", "wrong"], value="all", label="Show")
            reward_min = gr.Textbox(label="Reward ≥", placeholder="any", elem_id="reward-min")
            reward_max = gr.Textbox(label="Reward ≤", placeholder="any", elem_id="reward-max")
            order = gr.Radio(list(health_view.ORDERS), value="newest", label="Order", elem_id="order")
            steps_info = gr.Markdown()
        cards = gr.HTML(elem_id="cards", js_on_load=None)
    return {
        "live_run": live_run,
        "follow": follow,
        "live_status": live_status,
        "live_eval": live_eval,
        "health": health,
        "smoothing": smoothing,
        "plots": plots,
        "step": step,
        "correct": correct,
        "reward_min": reward_min,
        "reward_max": reward_max,
        "order": order,
        "steps_info": steps_info,
        "cards": cards,
    }


def _number(text: str | None) -> float | None:
    """A filter box: empty (or not a finite number: inf, nan) means no filter."""
    try:
        value = float(text) if text and text.strip() else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _plot_update(frame: Any, title: str) -> Any:
    """New data for a plot, or only a caption while it has none. Gradio's line plot fixes its series colours from
    the first frame it gets, so an empty frame first would leave every later line undrawn; and an empty plot shows
    only an icon, no title, so the caption goes in its label (e.g. why KL stays empty with beta = 0)."""
    if len(frame):
        return gr.LinePlot(frame, title=title, show_label=False)
    return gr.LinePlot(label=title, show_label=True)


def wire(ui: Layout, panel: Panel) -> None:
    """The timer and each filter refresh the view; picking a run by hand leaves follow-newest; a health finding's
    "show the completions" sets the filters that show its evidence."""
    live_inputs = [ui.live_run, ui.follow, ui.step, ui.correct, ui.reward_min, ui.reward_max, ui.painted]
    live_inputs += [ui.order, ui.smoothing]
    live_outputs = [
        ui.live_run,
        ui.live_status,
        ui.live_eval,
        ui.health,
        *ui.plots.values(),
        ui.cards,
        ui.steps_info,
        ui.painted,
    ]

    def refresh_live(
        name: str | None,
        follow_v: bool,
        step_text: str,
        correct_v: str,
        low_text: str,
        high_text: str,
        state: dict,
        order_v: str = "newest",
        smoothing_v: float = 0.0,
    ) -> list[Any]:
        step_v, low, high = _number(step_text), _number(low_text), _number(high_text)
        names = panel.run_names()
        choice: Any = gr.skip()
        if tuple(names) != state.get("names"):
            choice = gr.Dropdown(choices=names, value=name if name in names else (names[0] if names else None))
        if follow_v and names and name != names[0]:
            name = names[0]
            choice = gr.Dropdown(choices=names, value=name)
        if not name or name not in names:
            return [
                choice,
                "No run yet: start one in the Launch tab.",
                "",
                "",
                *[gr.skip()] * len(ui.plots),
                gr.skip(),
                "",
                {**state, "names": tuple(names)},
            ]
        view = panel.live(
            name,
            step_v,  # Panel.live reads inf / nan / huge as no filter
            correct_v,
            low,
            high,
            order=order_v or "newest",
            smoothing=float(smoothing_v or 0.0),
        )
        first, last = view.steps
        info = f"steps with completions: {first}–{last}" if last else ""
        fresh = view.key != state.get("key")
        return [
            choice,
            view.status,
            view.evaluation,
            view.health if fresh else gr.skip(),
            *[_plot_update(view.plots[p], view.titles[p]) if fresh else gr.skip() for p in PLOTS],
            view.cards if fresh else gr.skip(),
            info,
            {**state, "names": tuple(names), "key": view.key},
        ]

    ui.live_run.input(lambda: False, None, ui.follow)  # picking a run by hand means leaving follow-newest
    ui.timer.tick(refresh_live, live_inputs, live_outputs, show_progress="hidden")
    for component in (ui.live_run, ui.step, ui.correct, ui.reward_min, ui.reward_max, ui.follow, ui.order):
        component.change(refresh_live, live_inputs, live_outputs, show_progress="hidden")
    ui.smoothing.release(refresh_live, live_inputs, live_outputs, show_progress="hidden")

    def show_evidence(name: str | None, evt: gr.EventData) -> list[Any]:
        """A finding's "show the completions": set the filters that show its evidence (the refresh follows)."""
        filters = panel.evidence(name, str(getattr(evt, "finding", ""))) if name else None
        if filters is None:
            return [gr.skip()] * 5
        return [filters["step"], filters["correct"], filters["reward_min"], "", filters["order"]]

    ui.health.click(show_evidence, ui.live_run, [ui.step, ui.correct, ui.reward_min, ui.reward_max, ui.order])
