"""The panel's components, tab by tab: what is on screen. :mod:`lowvram_r1.ui.app` wires what they do.

    with gr.Blocks() as blocks:
        ui = build_layout(runs_root, recipes, first_recipe, knob_values(...))
        ui.start.click(...)

Element ids (``elem_id``) are what the browser test (tests/test_ui_browser.py) finds components by.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from lowvram_r1.config import LOSS_TYPES
from lowvram_r1.ui import health as health_view
from lowvram_r1.ui import user_tasks, views
from lowvram_r1.ui.plots import COMPARE_METRICS, PLOT_TITLES, PLOTS

NO_RECIPE = "(none: built-in defaults)"
RECIPE_MODEL = "(recipe default)"
REFRESH_S = 2.0
RATE_PLOTS = ("accuracy", "reflection")  # shares: drawn on a fixed 0-1 axis


def suggest_name(task: str, model: str) -> str:
    model_part = Path(model).name or "run"
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in f"{task}-{model_part}")
    return f"{safe.strip('-.')[:80]}-{time.strftime('%m%d-%H%M%S')}"


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


def build_layout(runs_root: Path, recipes: list[str], first_recipe: str, v: dict[str, Any], gpus: int = 0) -> Layout:
    """Create the components inside the caller's ``gr.Blocks``; ``v``: the first recipe's knob values; ``gpus``:
    the machine's GPUs (with several, the form offers one training process per GPU)."""
    timer = gr.Timer(REFRESH_S)
    painted = gr.State({})
    with gr.Tabs() as tabs:
        # ---------------------------------------------------------------- Launch
        with gr.Tab("Launch", id="launch"):
            with gr.Row():
                with gr.Column(scale=3):
                    with gr.Row():
                        recipe = gr.Dropdown(
                            [NO_RECIPE, *recipes], value=first_recipe, label="Recipe", scale=2, elem_id="recipe"
                        )
                        task = gr.Dropdown(user_tasks.choices(), value=v["task"], label="Task", elem_id="task")
                        model = gr.Dropdown(
                            [RECIPE_MODEL, "tiny"],
                            value=RECIPE_MODEL,
                            allow_custom_value=True,
                            label="Model",
                            info="tiny, a hub id or a local folder",
                            scale=2,
                            elem_id="model",
                        )
                    with gr.Row():
                        knobs = {
                            "num_generations": gr.Number(
                                v["num_generations"], label="Generations / prompt", precision=0
                            ),
                            "batch_size": gr.Number(v["batch_size"], label="Completions per step", precision=0),
                            "learning_rate": gr.Number(v["learning_rate"], label="Learning rate"),
                            "max_steps": gr.Number(v["max_steps"], label="Max steps", precision=0, elem_id="max-steps"),
                        }
                    with gr.Row():
                        knobs["max_completion_length"] = gr.Number(
                            v["max_completion_length"], label="Completion length", precision=0
                        )
                        knobs["lora_r"] = gr.Number(v["lora_r"], label="LoRA rank", precision=0)
                        knobs["beta"] = gr.Number(v["beta"], label="KL beta")
                        knobs["loss_type"] = gr.Dropdown(list(LOSS_TYPES), value=v["loss_type"], label="Loss type")
                        knobs["num_processes"] = gr.Number(
                            v["num_processes"],
                            label="Processes",
                            info=f"one per GPU ({gpus} here), --backend hf: see docs/multi-gpu.md",
                            precision=0,
                            minimum=1,
                            maximum=max(gpus, 1),
                            visible=gpus > 1,
                            elem_id="num-processes",
                        )
                    with gr.Row():
                        run_name = gr.Textbox(
                            suggest_name(v["task"], v["model"]), label="Run name", scale=3, elem_id="run-name"
                        )
                        start = gr.Button("▶ Start training", variant="primary", scale=1, elem_id="start")
                    launch_message = gr.Markdown(elem_id="launch-message")
                with gr.Column(scale=2):
                    command = gr.Code(
                        label="Command (copy to run it in a terminal)",
                        language="shell",
                        lines=4,
                        interactive=False,
                        buttons=["copy"],
                        elem_id="command",
                        wrap_lines=True,
                    )
                    memory = gr.Markdown(elem_id="memory-plan")
        # ---------------------------------------------------------------- Live
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
        # ---------------------------------------------------------------- Runs
        with gr.Tab("Runs", id="runs"):
            runs_table = gr.Dataframe(
                headers=views.RUN_COLUMNS, interactive=False, elem_id="runs-table", max_height=400
            )
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
        # ---------------------------------------------------------------- Compare
        with gr.Tab("Compare", id="compare"):
            with gr.Row():
                compare_runs = gr.Dropdown([], multiselect=True, label="Runs (two or more)", scale=3)
                compare_metric = gr.Dropdown(list(COMPARE_METRICS), value="reward", label="Metric")
            compare_plot = gr.LinePlot(x="step", y="value", color="run", height=360, x_title="step")
        # ---------------------------------------------------------------- Try it
        with gr.Tab("Try it", id="try"):
            with gr.Row():
                try_run = gr.Dropdown([], label="Run (with an adapter or checkpoint)", scale=2, elem_id="try-run")
                question = gr.Textbox(label="Question (empty = a held-out problem of the run's task)", scale=4)
                seed = gr.Number(0, label="Held-out problem #", precision=0, scale=1)
            ask = gr.Button("Answer", variant="primary", elem_id="ask")
            answer = gr.HTML(elem_id="answer", js_on_load=None)

    return Layout(
        timer=timer,
        painted=painted,
        tabs=tabs,
        recipe=recipe,
        task=task,
        model=model,
        knobs=knobs,
        run_name=run_name,
        start=start,
        launch_message=launch_message,
        command=command,
        memory=memory,
        live_run=live_run,
        follow=follow,
        live_status=live_status,
        live_eval=live_eval,
        plots=plots,
        step=step,
        correct=correct,
        reward_min=reward_min,
        reward_max=reward_max,
        steps_info=steps_info,
        cards=cards,
        runs_table=runs_table,
        selected=selected,
        stop=stop,
        resume=resume,
        delete=delete,
        confirm_row=confirm_row,
        confirm_text=confirm_text,
        confirm=confirm,
        cancel=cancel,
        runs_message=runs_message,
        run_log=run_log,
        compare_runs=compare_runs,
        compare_metric=compare_metric,
        compare_plot=compare_plot,
        try_run=try_run,
        question=question,
        seed=seed,
        ask=ask,
        answer=answer,
        health=health,
        smoothing=smoothing,
        order=order,
    )
