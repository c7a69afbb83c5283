"""The Gradio panel: Launch, Live, Runs, Compare and Try-it tabs over :class:`~lowvram_r1.ui.panel.Panel`.

    lowvram-r1 ui            # or: python app.py
    app = build_app(Path("runs"), Path("configs")); app.launch(**launch_kwargs())

Layout and wiring only; what each callback computes lives in ``panel.py`` (tested without a browser). A 2-second
timer refreshes the live view and the runs table; a refresh that finds nothing new repaints nothing.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import gradio as gr

from lowvram_r1.config import LOSS_TYPES
from lowvram_r1.tasks import TASKS
from lowvram_r1.ui import views
from lowvram_r1.ui.launcher import knob_values, list_recipes, recipe_config
from lowvram_r1.ui.panel import Panel
from lowvram_r1.ui.readers import COMPARE_METRICS, PLOT_TITLES, PLOTS

NO_RECIPE = "(none: built-in defaults)"
RECIPE_MODEL = "(recipe default)"
REFRESH_S = 2.0


def launch_kwargs() -> dict[str, Any]:
    """Theme and CSS go to ``launch()`` in Gradio 6."""
    return {"theme": gr.themes.Soft(primary_hue="indigo", neutral_hue="slate"), "css": views.CSS}


def _suggest_name(task: str, model: str) -> str:
    model_part = Path(model).name or "run"
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in f"{task}-{model_part}")
    return f"{safe.strip('-.')[:80]}-{time.strftime('%m%d-%H%M%S')}"


def _number(text: str | None) -> float | None:
    """A filter box: empty (or not a number) means no filter."""
    try:
        return float(text) if text and text.strip() else None
    except ValueError:
        return None


def _plot_update(frame: Any, title: str) -> Any:
    """New data for a plot, or only its title while it has none: Gradio's line plot fixes its series colours from
    the first frame it gets, so an empty frame first would leave every later line undrawn."""
    return gr.LinePlot(frame, title=title) if len(frame) else gr.LinePlot(title=title)


def build_app(runs_root: Path, configs_root: Path, cwd: Path | None = None) -> gr.Blocks:
    panel = Panel(runs_root, configs_root, cwd)
    recipes = list_recipes(configs_root)
    first_recipe = next((r for r in recipes if r.endswith("cpu-demo.yaml")), recipes[0] if recipes else NO_RECIPE)
    v = knob_values(recipe_config(None if first_recipe == NO_RECIPE else first_recipe))

    with gr.Blocks(title="lowvram-r1 panel", analytics_enabled=False) as app:
        gr.Markdown(
            "## lowvram-r1 · GRPO reasoning panel\n"
            f"Launch R1-style runs, watch rewards and completions live, compare runs, try the result. "
            f"Runs live in `{runs_root}/`."
        )
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
                            task = gr.Dropdown(sorted(TASKS), value=v["task"], label="Task", elem_id="task")
                            model = gr.Dropdown(
                                [RECIPE_MODEL, "tiny"], value=RECIPE_MODEL, allow_custom_value=True, label="Model",
                                info="tiny, a hub id or a local folder", scale=2, elem_id="model",
                            )
                        with gr.Row():
                            knobs = {
                                "num_generations": gr.Number(
                                    v["num_generations"], label="Generations / prompt", precision=0
                                ),
                                "batch_size": gr.Number(v["batch_size"], label="Completions per step", precision=0),
                                "learning_rate": gr.Number(v["learning_rate"], label="Learning rate"),
                                "max_steps": gr.Number(
                                    v["max_steps"], label="Max steps", precision=0, elem_id="max-steps"
                                ),
                            }
                        with gr.Row():
                            knobs["max_completion_length"] = gr.Number(
                                v["max_completion_length"], label="Completion length", precision=0
                            )
                            knobs["lora_r"] = gr.Number(v["lora_r"], label="LoRA rank", precision=0)
                            knobs["beta"] = gr.Number(v["beta"], label="KL beta")
                            knobs["loss_type"] = gr.Dropdown(list(LOSS_TYPES), value=v["loss_type"], label="Loss type")
                        with gr.Row():
                            run_name = gr.Textbox(
                                _suggest_name(v["task"], v["model"]), label="Run name", scale=3, elem_id="run-name"
                            )
                            start = gr.Button("▶ Start training", variant="primary", scale=1, elem_id="start")
                        launch_message = gr.Markdown(elem_id="launch-message")
                    with gr.Column(scale=2):
                        command = gr.Code(
                            label="Command (copy to run it in a terminal)", language="shell", lines=4,
                            interactive=False, buttons=["copy"], elem_id="command", wrap_lines=True,
                        )
                        memory = gr.Markdown(elem_id="memory-plan")
            # ---------------------------------------------------------------- Live
            with gr.Tab("Live", id="live"):
                with gr.Row():
                    live_run = gr.Dropdown([], label="Run", scale=3, elem_id="live-run")
                    follow = gr.Checkbox(True, label="Follow the newest run", scale=1)
                live_status = gr.Markdown(elem_id="live-status", elem_classes="lr-status")
                live_eval = gr.Markdown()
                plots = {}
                for row in (PLOTS[:3], PLOTS[3:]):
                    with gr.Row():
                        for name in row:
                            plots[name] = gr.LinePlot(
                                x="step", y="value", color="series", title=PLOT_TITLES[name], height=230,
                                x_title="step", y_title="", show_label=False, elem_id=f"plot-{name}",
                            )
                gr.Markdown("#### Completions")
                with gr.Row():
                    step = gr.Textbox(label="Step", placeholder="latest", elem_id="filter-step")
                    correct = gr.Radio(["all", "correct", "wrong"], value="all", label="Show")
                    reward_min = gr.Textbox(label="Reward ≥", placeholder="any", elem_id="reward-min")
                    reward_max = gr.Textbox(label="Reward ≤", placeholder="any", elem_id="reward-max")
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

        form = [recipe, task, model, *knobs.values(), run_name]

        def form_values(recipe_v: str, task_v: str, model_v: str, *rest: Any) -> tuple[str | None, dict, str]:
            values = dict(zip(list(knobs), rest[:-1], strict=True))
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
                return [gr.skip()] * (2 + len(knobs))
            model_name = values["model"] if model_v in (None, RECIPE_MODEL) else model_v
            return [values["task"], *(values[k] for k in knobs), _suggest_name(values["task"], model_name)]

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
                _suggest_name(values["task"], launch.cfg.model.name),
                gr.Dropdown(choices=names, value=launch.run_dir.name),
                gr.Tabs(selected="live"),
            ]

        # .input fires on user edits only: a recipe filling ten fields then previews once, not ten times
        preview_outputs = [command, launch_message, memory]
        recipe.input(load_recipe, [recipe, model], [task, *knobs.values(), run_name]).then(
            preview, form, preview_outputs
        )
        for component in form:
            component.input(preview, form, preview_outputs)
        start.click(start_run, form, [launch_message, run_name, live_run, tabs])

        def on_load(task_v: str, model_v: str) -> list[Any]:
            names = panel.run_names()
            model_name = v["model"] if model_v in (None, RECIPE_MODEL) else model_v
            return [
                _suggest_name(task_v, model_name),  # a fresh name for each page load
                gr.Dropdown(choices=names, value=names[0] if names else None),
                gr.Dropdown(choices=names, value=names[0] if names else None),
                gr.Dropdown(choices=names),
                gr.Dropdown(choices=panel.tryable_runs()),
            ]

        app.load(
            on_load, [task, model], [run_name, live_run, selected, compare_runs, try_run], show_progress="hidden"
        ).then(preview, form, preview_outputs, show_progress="hidden")

        # -- live view -----------------------------------------------------------------------------------------
        live_inputs = [live_run, follow, step, correct, reward_min, reward_max, painted]
        live_outputs = [live_run, live_status, live_eval, *plots.values(), cards, steps_info, painted]

        def refresh_live(
            name: str | None, follow_v: bool, step_text: str, correct_v: str, low_text: str, high_text: str,
            state: dict,
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
                return [choice, "No run yet: start one in the Launch tab.", "", *[gr.skip()] * len(plots),
                        gr.skip(), "", {**state, "names": tuple(names)}]
            view = panel.live(name, None if step_v is None else int(step_v), correct_v, low, high)
            first, last = view.steps
            info = f"steps with completions: {first}–{last}" if last else ""
            fresh = view.key != state.get("key")
            return [
                choice, view.status, view.evaluation,
                *[_plot_update(view.plots[p], view.titles[p]) if fresh else gr.skip() for p in PLOTS],
                view.cards if fresh else gr.skip(),
                info,
                {**state, "names": tuple(names), "key": view.key},
            ]

        live_run.input(lambda: False, None, follow)  # picking a run by hand means leaving follow-newest
        timer.tick(refresh_live, live_inputs, live_outputs, show_progress="hidden")
        for component in (live_run, step, correct, reward_min, reward_max, follow):
            component.change(refresh_live, live_inputs, live_outputs, show_progress="hidden")

        # -- runs ------------------------------------------------------------------------------------------------
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
            return [gr.skip() if same else table, *choices, log,
                    {**state, "table": table, "run_names": tuple(names), "tryable": tuple(tryable)}]

        runs_state = gr.State({})
        timer.tick(
            refresh_runs, [selected, compare_runs, runs_state],
            [runs_table, selected, compare_runs, try_run, run_log, runs_state], show_progress="hidden",
        )

        def pick_row(evt: gr.SelectData) -> Any:
            return evt.row_value[0] if evt.row_value else gr.skip()

        runs_table.select(pick_row, None, selected)

        def control(action: str) -> Any:
            def run_action(name: str | None) -> str:
                if not name:
                    return "Pick a run first."
                try:
                    return getattr(panel, action)(name)
                except ValueError as error:
                    return f"**Refused:** {error}"

            return run_action

        stop.click(control("stop"), selected, runs_message)
        resume.click(control("resume"), selected, runs_message)
        delete.click(
            lambda name: (gr.Row(visible=bool(name)), f"Delete **{runs_root}/{name}** and every file in it? "
                          "This cannot be undone." if name else ""),
            selected, [confirm_row, confirm_text],
        )
        confirm.click(control("delete"), selected, runs_message).then(lambda: gr.Row(visible=False), None, confirm_row)
        cancel.click(lambda: gr.Row(visible=False), None, confirm_row)

        # -- compare and try it ----------------------------------------------------------------------------------
        def refresh_compare(names: list[str] | None, metric: str) -> Any:
            return panel.compare(list(names or []), metric)

        for component in (compare_runs, compare_metric):
            component.change(refresh_compare, [compare_runs, compare_metric], compare_plot)
        timer.tick(refresh_compare, [compare_runs, compare_metric], compare_plot, show_progress="hidden")

        def try_it(name: str | None, text: str, seed_v: float | None) -> str:
            if not name:
                return "<p>Pick a run that has an adapter or a checkpoint.</p>"
            from lowvram_r1.ui.tryit import run_in_child

            result = run_in_child(runs_root / name, text.strip() or None, int(seed_v or 0), cwd)
            if "error" in result:
                return f"<p><b>No answer:</b> {html.escape(result['error'])}</p>"
            return views.completion_cards([{**result, "prompt": result["prompt_text"]}])

        ask.click(try_it, [try_run, question, seed], answer)
    return app
