"""The Launch tab: recipe, task, model and the knobs that matter, the command it runs and its memory plan.

    parts = build(recipes, first_recipe, knob_values(cfg), gpus)   # inside gr.Tabs: components by Layout field
    wire(app, ui, panel, values)                                    # preview on each edit, start, page load

A recipe choice fills the form; every edit previews the command and the memory plan (``Panel.plan_launch``,
``Panel.memory_plan``); Start launches the run and switches to the Live tab.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr

from lowvram_r1.config import LOSS_TYPES
from lowvram_r1.ui import user_tasks
from lowvram_r1.ui.launch_command import knob_values, recipe_config
from lowvram_r1.ui.panel import Panel
from lowvram_r1.ui.tabs import Layout

NO_RECIPE = "(none: built-in defaults)"
RECIPE_MODEL = "(recipe default)"


def suggest_name(task: str, model: str) -> str:
    model_part = Path(model).name or "run"
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in f"{task}-{model_part}")
    return f"{safe.strip('-.')[:80]}-{time.strftime('%m%d-%H%M%S')}"


def build(recipes: list[str], first_recipe: str, v: dict[str, Any], gpus: int = 0) -> dict[str, Any]:
    """The tab's components by :class:`Layout` field; ``v``: the first recipe's knob values; ``gpus``: the
    machine's GPUs (with several, the form offers one training process per GPU)."""
    with gr.Tab("Launch", id="launch"), gr.Row():
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
            knobs = _knobs(v, gpus)
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
    return {
        "recipe": recipe,
        "task": task,
        "model": model,
        "knobs": knobs,
        "run_name": run_name,
        "start": start,
        "launch_message": launch_message,
        "command": command,
        "memory": memory,
    }


def _knobs(v: dict[str, Any], gpus: int) -> dict[str, Any]:
    """The knobs, in two rows: by name, as ``launcher.knob_values`` names them."""
    with gr.Row():
        knobs = {
            "num_generations": gr.Number(v["num_generations"], label="Generations / prompt", precision=0),
            "batch_size": gr.Number(v["batch_size"], label="Completions per step", precision=0),
            "learning_rate": gr.Number(v["learning_rate"], label="Learning rate"),
            "max_steps": gr.Number(v["max_steps"], label="Max steps", precision=0, elem_id="max-steps"),
        }
    with gr.Row():
        knobs["max_completion_length"] = gr.Number(v["max_completion_length"], label="Completion length", precision=0)
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
    return knobs


def wire(app: gr.Blocks, ui: Layout, panel: Panel, v: dict[str, Any]) -> None:
    """Recipe choice fills the form; each edit previews; Start launches; a page load names a fresh run, fills
    every tab's run pickers and previews. ``v``: the first recipe's knob values."""
    form = [ui.recipe, ui.task, ui.model, *ui.knobs.values(), ui.run_name]

    def form_values(recipe_v: str, task_v: str, model_v: str, *rest: Any) -> tuple[str | None, dict, str]:
        values = dict(zip(list(ui.knobs), rest[:-1], strict=True))
        values["task"] = task_v
        values["model"] = None if model_v in (None, RECIPE_MODEL) else model_v
        return (None if recipe_v == NO_RECIPE else recipe_v), values, rest[-1] or ""

    def preview(*form_inputs: Any) -> tuple[str, str, str]:
        recipe_v, values, name = form_values(*form_inputs)
        plan = panel.memory_plan(recipe_v, values)
        try:
            return panel.plan_launch(name, recipe_v, values).display, "", plan
        except ValueError as error:
            return "", f"**Cannot start:** {error}", plan

    def load_recipe(recipe_v: str, model_v: str) -> list[Any]:
        try:
            values = knob_values(recipe_config(None if recipe_v == NO_RECIPE else recipe_v))
        except ValueError as error:
            gr.Warning(str(error))
            return [gr.skip()] * (2 + len(ui.knobs))
        model_name = values["model"] if model_v in (None, RECIPE_MODEL) else model_v
        return [values["task"], *(values[k] for k in ui.knobs), suggest_name(values["task"], model_name)]

    def start_run(*form_inputs: Any) -> list[Any]:
        recipe_v, values, name = form_values(*form_inputs)
        try:
            launch = panel.start(name, recipe_v, values)
        except ValueError as error:
            return [f"**Not started:** {error}", gr.skip(), gr.skip(), gr.skip()]
        message = f"Started **{launch.run_dir.name}** — follow it in the Live tab."
        names = panel.run_names()
        return [
            message,
            suggest_name(values["task"], launch.cfg.model.name),
            gr.Dropdown(choices=names, value=launch.run_dir.name),
            gr.Tabs(selected="live"),
        ]

    # .input fires on user edits only: a recipe filling ten fields then previews once, not ten times
    preview_outputs = [ui.command, ui.launch_message, ui.memory]
    ui.recipe.input(load_recipe, [ui.recipe, ui.model], [ui.task, *ui.knobs.values(), ui.run_name]).then(
        preview, form, preview_outputs
    )
    for component in form:
        component.input(preview, form, preview_outputs)
    ui.start.click(start_run, form, [ui.launch_message, ui.run_name, ui.live_run, ui.tabs])

    def on_load(task_v: str, model_v: str) -> list[Any]:
        names = panel.run_names()
        model_name = v["model"] if model_v in (None, RECIPE_MODEL) else model_v
        return [
            suggest_name(task_v, model_name),  # a fresh name for each page load
            gr.Dropdown(choices=names, value=names[0] if names else None),
            gr.Dropdown(choices=names, value=names[0] if names else None),
            gr.Dropdown(choices=names),
            gr.Dropdown(choices=panel.tryable_runs()),
        ]

    app.load(
        on_load,
        [ui.task, ui.model],
        [ui.run_name, ui.live_run, ui.selected, ui.compare_runs, ui.try_run],
        show_progress="hidden",
    ).then(preview, form, preview_outputs, show_progress="hidden")
