"""The live view's run-health card, its links to the evidence, the curves' smoothing and the completions grouped by
prompt. Pure functions from findings and records to HTML and frames (tested without a browser); no Gradio here
except the card's click script, which :mod:`lowvram_r1.ui.layout` hands to ``gr.HTML``.

    html = health_card(findings)                  # worst first; each finding links to its plot and completions
    filters = evidence_filters(finding)           # the completion filters that show a finding's evidence
    frame = smooth(frame, 0.6)                    # TensorBoard's debiased exponential moving average, per series
    html = grouped_cards(records)                 # one block per prompt: each completion's reward and advantage
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from lowvram_r1.runs.health import Finding
from lowvram_r1.ui.views import fmt, split_completion

ORDERS = ("newest", "grouped by prompt", "longest first", "highest reward")
# evidence "order" (lowvram_r1.runs.health) -> the completions view that shows it
_ORDER_VIEWS = {
    "longest": "longest first",
    "group": "grouped by prompt",
    "reward": "highest reward",
    "latest": "newest",
}
STEP_RECORDS = 512  # a step's completions read to order or group them (a step's batch; 32 on the CPU demo)

# Clicks on a finding's evidence button reach Python as the HTML component's "click" event with the finding's id
# (delegated on the root element: the buttons are re-rendered with every new card).
CLICK_JS = (
    "element.addEventListener('click', (e) => { const b = e.target.closest('[data-finding]'); "
    "if (b) { e.preventDefault(); trigger('click', {finding: b.dataset.finding}); } });"
)

CSS = """
.lr-health { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px; }
.lr-health h4 { margin: 0 0 6px 0; }
.lr-finding { border-left: 4px solid #9ca3af; padding: 4px 8px; margin: 6px 0; font-size: 13px; }
.lr-finding.critical { border-left-color: #dc2626; } .lr-finding.warning { border-left-color: #d97706; }
.lr-finding.info { border-left-color: #2563eb; }
.lr-sev { font-size: 10px; text-transform: uppercase; letter-spacing: .05em; font-weight: 700; margin-right: 6px; }
.lr-finding.critical .lr-sev { color: #dc2626; } .lr-finding.warning .lr-sev { color: #b45309; }
.lr-finding.info .lr-sev { color: #2563eb; }
.lr-advice { margin-top: 2px; } .lr-links { margin-top: 2px; font-size: 12px; }
.lr-links a, .lr-links button { margin-right: 10px; cursor: pointer; color: #4f46e5; background: none; border: none;
                                padding: 0; font-size: 12px; text-decoration: underline; }
.lr-group { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px 10px; margin: 8px 0; }
.lr-group table { width: 100%; border-collapse: collapse; font-size: 12px; }
.lr-group td { border-top: 1px solid var(--border-color-primary); padding: 3px 6px; vertical-align: top; }
.lr-group td.num { font-family: var(--font-mono); white-space: nowrap; text-align: right; width: 1%; }
.lr-group td.text { font-family: var(--font-mono); white-space: pre-wrap; }
.lr-up { color: #166534; } .lr-down { color: #991b1b; }
"""


def health_card(findings: Sequence[Finding], steps: tuple[int, int] | None = None) -> str:
    """The Health card: one block per finding (worst first: the caller's order), or a line saying none."""
    if not findings:
        covered = f" over steps {steps[0]}–{steps[1]}" if steps and steps[1] else ""
        return f'<div class="lr-health"><h4>Health</h4><p>✓ No finding{covered}.</p></div>'
    blocks = []
    for finding in findings:
        evidence = finding.evidence
        span = evidence.get("steps") or []
        where = f" · steps {span[0]}–{span[-1]}" if span else ""
        plot = evidence.get("plot")
        links = f'<a href="#plot-{html.escape(str(plot))}">plot</a>' if plot else ""
        if evidence.get("completions"):
            links += f'<button data-finding="{html.escape(finding.id)}">show the completions</button>'
        blocks.append(
            f'<div class="lr-finding {html.escape(finding.severity)}" id="finding-{html.escape(finding.id)}">'
            f'<span class="lr-sev">{html.escape(finding.severity)}</span><b>{html.escape(finding.id)}</b>{where}'
            f"<div>{html.escape(str(evidence.get('summary', '')))}</div>"
            f'<div class="lr-advice">→ {html.escape(finding.advice)}</div>'
            f'<div class="lr-links">{links}</div></div>'
        )
    count = f"{len(findings)} finding{'s' if len(findings) > 1 else ''}, worst first"
    return f'<div class="lr-health"><h4>Health · {count}</h4>{"".join(blocks)}</div>'


def evidence_filters(finding: Finding) -> dict[str, Any]:
    """The completion filters (step, correct, reward_min, order) that show a finding's evidence."""
    query = finding.evidence.get("completions") or {}
    return {
        "step": "" if query.get("step") is None else str(query["step"]),
        "correct": query.get("correct", "all"),
        "reward_min": "" if query.get("reward_min") is None else f"{query['reward_min']:g}",
        "order": _ORDER_VIEWS.get(query.get("order", "latest"), "newest"),
    }


def order_records(records: list[dict[str, Any]], order: str, limit: int) -> list[dict[str, Any]]:
    """``limit`` records in the order asked: longest completion first, or highest total reward first."""
    if order == "longest first":
        records = sorted(records, key=lambda r: len(str(r.get("completion", ""))), reverse=True)
    elif order == "highest reward":
        records = sorted(records, key=lambda r: _number(r.get("reward")), reverse=True)
    return records[:limit]


def grouped_cards(records: list[dict[str, Any]]) -> str:
    """One block per prompt (the group GRPO compares): its mean and spread of reward, then each completion with
    its reward, advantage (pushed up or down), correct flag and answer, best first."""
    if not records:
        return "<p><i>No completions match (yet).</i></p>"
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(str(record.get("prompt", "")), []).append(record)
    blocks = []
    for prompt, members in groups.items():
        rewards = [_number(r.get("reward")) for r in members if math.isfinite(_number(r.get("reward")))]
        mean = sum(rewards) / len(rewards) if rewards else math.nan
        spread = math.sqrt(sum((x - mean) ** 2 for x in rewards) / len(rewards)) if rewards else math.nan
        rows = []
        for r in sorted(members, key=lambda r: _number(r.get("advantage")), reverse=True):
            advantage = _number(r.get("advantage"))
            arrow = "" if not math.isfinite(advantage) or advantage == 0 else ("lr-up" if advantage > 0 else "lr-down")
            correct = r.get("correct")
            verdict = "" if correct is None else ("✓" if correct else "✗")
            parts = split_completion(str(r.get("completion", "")))
            shown = parts["answer"] or parts["rest"] or parts["think"]
            chips = " ".join(
                f"{html.escape(str(n).removesuffix('_reward'))} {fmt(v, 2)}"
                for n, v in (r.get("rewards") or {}).items()
            )
            rows.append(
                f'<tr><td class="num">{fmt(r.get("reward"), 2)}</td>'
                f'<td class="num {arrow}">{fmt(advantage, 2)}</td><td class="num">{verdict}</td>'
                f'<td class="text">{html.escape(shown[:300])}</td><td class="num">{chips}</td></tr>'
            )
        blocks.append(
            f'<div class="lr-group"><div class="lr-prompt"><b>step {fmt(members[0].get("step"))}</b> · '
            f"{len(members)} completions · reward mean {fmt(mean, 2)}, spread {fmt(spread, 2)}"
            f"{' (no spread: advantage 0, nothing learned)' if rewards and spread == 0 else ''}<br>"
            f'{html.escape(prompt)}</div><table><tr><td class="num">reward</td><td class="num">advantage</td>'
            f'<td class="num"></td><td>answer</td><td class="num">rewards</td></tr>{"".join(rows)}</table></div>'
        )
    return "".join(blocks)


def smooth(frame: pd.DataFrame, weight: float, by: str = "series") -> pd.DataFrame:
    """Each series' values replaced by TensorBoard's debiased exponential moving average with ``weight`` (0: raw)."""
    if not weight or not len(frame):
        return frame
    weight = min(max(float(weight), 0.0), 0.999)
    values = frame["value"].to_numpy(copy=True)
    for _, positions in frame.groupby(by, sort=False).indices.items():
        last, count = 0.0, 0
        for i in positions:
            count += 1
            last = last * weight + (1 - weight) * values[i]
            values[i] = last / (1 - weight**count)  # debiased: the first points are not pulled toward 0
    smoothed = frame.copy()
    smoothed["value"] = values
    return smoothed


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else -math.inf
