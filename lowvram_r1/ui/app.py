"""The Gradio panel: Launch, Live, Runs, Compare and Try-it tabs over :class:`~lowvram_r1.ui.panel.Panel`.

    lowvram-r1 ui            # or: python app.py
    app = build_app(Path("runs"), PACKAGE_RECIPES); app.launch(**launch_kwargs())

Wiring only: the components are laid out in ``layout.py``, and what each callback computes lives in ``panel.py``
(tested without a browser). A 2-second timer refreshes the live view and the runs table; a refresh that finds
nothing new repaints nothing.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr

from lowvram_r1.ui import health, views
from lowvram_r1.ui.launcher import knob_values, list_recipes, recipe_config
from lowvram_r1.ui.layout import NO_RECIPE, RECIPE_MODEL, build_layout, suggest_name
from lowvram_r1.ui.panel import Panel
from lowvram_r1.ui.plots import PLOTS


def launch_kwargs() -> dict[str, Any]:
    """Theme and CSS go to ``launch()`` in Gradio 6."""
    return {"theme": gr.themes.Soft(primary_hue="indigo", neutral_hue="slate"), "css": views.CSS + health.CSS}


def _number(text: str | None) -> float | None:
    """A filter box: empty (or not a number) means no filter."""
    try:
        return float(text) if text and text.strip() else None
    except ValueError:
        return None


def _plot_update(frame: Any, title: str) -> Any:
    """New data for a plot, or only a caption while it has none. Gradio's line plot fixes its series colours from
    the first frame it gets, so an empty frame first would leave every later line undrawn; and an empty plot shows
    only an icon, no title, so the caption goes in its label (e.g. why KL stays empty with beta = 0)."""
    if len(frame):
        return gr.LinePlot(frame, title=title, show_label=False)
    return gr.LinePlot(label=title, show_label=True)


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

        # -- live view -----------------------------------------------------------------------------------------
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
                None if step_v is None else int(step_v),
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

        def control(action: str) -> Any:
            def run_action(name: str | None) -> str:
                if not name:
                    return "Pick a run first."
                try:
                    return getattr(panel, action)(name)
                except ValueError as error:
                    return f"**Refused:** {error}"

            return run_action

        ui.stop.click(control("stop"), ui.selected, ui.runs_message)
        ui.resume.click(control("resume"), ui.selected, ui.runs_message)
        ui.delete.click(
            lambda name: (
                gr.Row(visible=bool(name)),
                f"Delete **{runs_root}/{name}** and every file in it? This cannot be undone." if name else "",
            ),
            ui.selected,
            [ui.confirm_row, ui.confirm_text],
        )
        ui.confirm.click(control("delete"), ui.selected, ui.runs_message).then(
            lambda: gr.Row(visible=False), None, ui.confirm_row
        )
        ui.cancel.click(lambda: gr.Row(visible=False), None, ui.confirm_row)

        # -- compare and try it ----------------------------------------------------------------------------------
        def refresh_compare(names: list[str] | None, metric: str) -> Any:
            return panel.compare(list(names or []), metric)

        for component in (ui.compare_runs, ui.compare_metric):
            component.change(refresh_compare, [ui.compare_runs, ui.compare_metric], ui.compare_plot)
        ui.timer.tick(refresh_compare, [ui.compare_runs, ui.compare_metric], ui.compare_plot, show_progress="hidden")

        def try_it(name: str | None, text: str, seed_v: float | None) -> str:
            if not name:
                return "<p>Pick a run that has an adapter or a checkpoint.</p>"
            from lowvram_r1.ui.tryit import run_in_child

            try:
                run_dir = panel.run_path(name)
            except ValueError as error:
                return f"<p><b>No answer:</b> {html.escape(str(error))}</p>"
            result = run_in_child(run_dir, text.strip() or None, int(seed_v or 0), cwd)
            if "error" in result:
                return f"<p><b>No answer:</b> {html.escape(result['error'])}</p>"
            return views.completion_cards([{**result, "prompt": result["prompt_text"]}])

        ui.ask.click(try_it, [ui.try_run, ui.question, ui.seed], ui.answer)
    return app
