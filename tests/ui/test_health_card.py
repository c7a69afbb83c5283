"""The live view's run health without a browser: the Health card (worst first, links to the plot and to the
completions), the filters a finding's link sets, completions grouped by prompt with reward and advantage, the
curves' smoothing, and the notebook's findings. The browser sees the card in tests/ui/test_ui_browser.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lowvram_r1.runs import RunDir, append_jsonl
from lowvram_r1.ui.health import grouped_cards, smooth

pytest.importorskip("gradio", reason="the panel's extra: pip install -e '.[ui]'")


def cut_run(root: Path) -> RunDir:
    """A run whose completions hit the limit (truncated) and whose groups all score the same (no_signal)."""
    run = RunDir(root / "cut")
    run.path.mkdir(parents=True)
    run.config.write_text("generation:\n  max_completion_length: 8\ntraining:\n  num_generations: 4\n")
    run.write_status(state="running", step=3, max_steps=10)
    for step in (1, 2, 3):
        append_jsonl(
            run.metrics,
            [
                {
                    "kind": "train",
                    "step": step,
                    "reward": 0.0,
                    "completions/clipped_ratio": 0.9,
                    "frac_reward_zero_std": 1.0,
                }
            ],
        )
        append_jsonl(
            run.completions,
            [
                {
                    "step": step,
                    "prompt": f"prompt {p}",
                    "completion": "<think>" + "x" * (i + 1),
                    "rewards": {"format_reward": 0.0},
                    "reward": 0.0,
                    "advantage": 0.0,
                    "correct": False,
                }
                for p in range(2)
                for i in range(4)
            ],
        )
    return run


def test_the_live_view_shows_the_health_card_and_links_each_finding_to_its_evidence(tmp_path: Path) -> None:
    from lowvram_r1.ui.panel import Panel

    run = cut_run(tmp_path)
    panel = Panel(tmp_path, tmp_path / "configs")
    view = panel.live("cut")
    assert view.health.index("truncated") < view.health.index("no_signal")  # both critical, in rule order
    assert 'data-finding="truncated"' in view.health and 'href="#plot-completion_length"' in view.health
    assert panel.evidence("cut", "truncated") == {
        "step": "3",
        "correct": "all",
        "reward_min": "",
        "order": "longest first",
    }
    assert panel.evidence("cut", "no_signal")["order"] == "grouped by prompt"
    assert panel.evidence("cut", "reward_hacking") is None

    longest = panel.live("cut", step=3, order="longest first", limit=2)
    assert longest.cards.count('"lr-card bad"') == 2 and longest.cards.count("x" * 4 + "<") == 2
    grouped = panel.live("cut", step=3, order="grouped by prompt")
    assert grouped.cards.count('class="lr-group"') == 2 and "no spread: advantage 0" in grouped.cards

    append_jsonl(
        run.metrics,
        [
            {"kind": "train", "step": s, "reward": 0.5, "completions/clipped_ratio": 0.0, "frac_reward_zero_std": 0.0}
            for s in range(4, 14)
        ],
    )
    assert "No finding over steps 1–3" in panel.live("cut").health  # healed: the last 10 steps are fine


def test_groups_show_each_completions_reward_and_advantage_best_first() -> None:
    records = [
        {
            "step": 1,
            "prompt": "q",
            "completion": "<answer>7</answer>",
            "reward": 1.0,
            "advantage": 1.2,
            "correct": True,
        },
        {
            "step": 1,
            "prompt": "q",
            "completion": "<answer>5</answer>",
            "reward": 0.0,
            "advantage": -0.8,
            "correct": False,
        },
    ]
    html = grouped_cards(records)
    assert html.index(">7<") < html.index(">5<")
    assert 'class="num lr-up">1.20' in html and 'class="num lr-down">-0.80' in html
    assert "reward mean 0.50, spread 0.50" in html


def test_smoothing_is_a_debiased_exponential_moving_average_per_series() -> None:
    frame = pd.DataFrame({"step": [1, 2, 3, 1], "value": [0.0, 1.0, 1.0, 5.0], "series": ["a", "a", "a", "b"]})
    smoothed = smooth(frame, 0.5)
    assert smoothed["value"].tolist() == pytest.approx([0.0, 2 / 3, 6 / 7, 5.0])
    assert smooth(frame, 0.0) is frame and frame["value"].tolist() == [0.0, 1.0, 1.0, 5.0]


def test_the_notebook_lists_the_findings(tmp_path: Path) -> None:
    from lowvram_r1.notebook import RunView

    view = RunView(cut_run(tmp_path).path)
    view.refresh()
    text = view.health_text()
    assert text.startswith("Health: 2 findings") and "CRITICAL truncated" in text and "--max-completion-length" in text
