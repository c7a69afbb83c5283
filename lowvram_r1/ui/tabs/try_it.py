"""The Try it tab: a trained run answers a question, or a held-out problem of its task, in a child process.

parts = build()            # inside gr.Tabs: components by Layout field
wire(ui, panel, cwd)       # Answer runs lowvram_r1.ui.tryit.run_in_child (the panel never imports torch)
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr

from lowvram_r1.ui import views
from lowvram_r1.ui.panel import Panel
from lowvram_r1.ui.tabs import Layout


def build() -> dict[str, Any]:
    """The tab's components by :class:`Layout` field."""
    with gr.Tab("Try it", id="try"):
        with gr.Row():
            try_run = gr.Dropdown([], label="Run (with an adapter or checkpoint)", scale=2, elem_id="try-run")
            question = gr.Textbox(label="Question (empty = a held-out problem of the run's task)", scale=4)
            seed = gr.Number(0, label="Held-out problem #", precision=0, scale=1)
        ask = gr.Button("Answer", variant="primary", elem_id="ask")
        answer = gr.HTML(elem_id="answer", js_on_load=None)
    return {"try_run": try_run, "question": question, "seed": seed, "ask": ask, "answer": answer}


def wire(ui: Layout, panel: Panel, cwd: Path | None) -> None:
    """Answer: the picked run's model answers in a child process started in ``cwd``."""

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
