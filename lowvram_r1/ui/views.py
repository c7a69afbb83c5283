"""How the panel shows things: completion cards (think and answer set apart), run rows, status and eval lines.

Pure functions from records to HTML / table rows, so they are tested without a browser. Everything a model or a
run directory wrote is escaped: completions are untrusted text.
"""

from __future__ import annotations

import html
import math
import re
import time
from typing import Any

_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.S)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)

CSS = """
.lr-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 10px; }
.lr-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
           background: var(--background-fill-primary); font-size: 13px; }
.lr-card.ok { border-left: 4px solid #16a34a; } .lr-card.bad { border-left: 4px solid #dc2626; }
.lr-head { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-bottom: 6px; }
.lr-chip { border-radius: 10px; padding: 1px 8px; background: var(--background-fill-secondary);
           font-family: var(--font-mono); font-size: 12px; }
.lr-chip.ok { background: #dcfce7; color: #166534; } .lr-chip.bad { background: #fee2e2; color: #991b1b; }
.lr-prompt { color: var(--body-text-color-subdued); white-space: pre-wrap; font-size: 12px; margin-bottom: 4px; }
.lr-think { white-space: pre-wrap; font-family: var(--font-mono); font-size: 12px; background: #f5f3ff;
            color: #4c1d95; border-radius: 6px; padding: 4px 6px; margin-bottom: 4px; }
.lr-answer { white-space: pre-wrap; font-family: var(--font-mono); font-size: 12px; background: #ecfeff;
             color: #155e75; border-radius: 6px; padding: 4px 6px; font-weight: 600; }
.lr-rest { white-space: pre-wrap; font-family: var(--font-mono); font-size: 12px; color: #6b7280; }
.lr-label { font-size: 10px; text-transform: uppercase; letter-spacing: .05em; opacity: .7; margin-right: 4px; }
.lr-status { font-size: 14px; }
.lr-search { font-family: var(--font-mono); font-size: 12px; background: #fefce8; color: #713f12;
             border-radius: 6px; padding: 4px 6px; margin-bottom: 4px; }
.lr-search details { margin-top: 2px; } .lr-search pre { white-space: pre-wrap; margin: 2px 0; }
"""


_TURN = re.compile(r"<(think|search|answer)>(.*?)(?:</\1>|$)", re.S)
_PARTS = (("think", "think"), ("answer", "answer"), ("rest", "outside tags"))  # a card's boxes: CSS class, label


def _box(kind: str, label: str, text: str) -> str:
    return f'<div class="lr-{kind}"><span class="lr-label">{label}</span>{html.escape(text)}</div>'


def _search_block(k: int, query: str, block: str) -> str:
    from lowvram_r1.rewards.trace import block_titles

    titles = block_titles(block)
    summary = f"{len(titles)} passages: " + "; ".join(titles) if titles else "no passages"
    return (
        f'<div class="lr-search"><span class="lr-label">search {k + 1}</span>{html.escape(query)}<details><summary>'
        f"{html.escape(summary)}</summary><pre>{html.escape(block.strip())}</pre></details></div>"
    )


def search_turns(text: str) -> str | None:
    """A search trace's turns in the order they happened (None for a completion without searches): each think, each
    query with the titles of what came back (expandable to the passages), the answer, whatever the model wrote
    outside the tags, and a warning when it wrote an observation tag itself."""
    from lowvram_r1.rewards.trace import parse_trace

    trace = parse_trace(text)
    if not trace.queries and not trace.observations and not trace.forged:
        return None
    body, rest, position, searches = [], [], 0, 0
    for match in _TURN.finditer(trace.model_text):
        rest.append(trace.model_text[position : match.start()])
        position = match.end()
        tag, inside = match.group(1), match.group(2).strip()
        if tag == "search" and searches < len(trace.queries):
            block = trace.observations[searches] if searches < len(trace.observations) else ""
            body.append(_search_block(searches, trace.queries[searches], block))
            searches += 1
        elif tag in ("think", "answer") and inside:
            body.append(_box(tag, tag, inside))
    outside = ("".join(rest) + trace.model_text[position:]).strip()
    if outside:
        body.append(_box("rest", "outside tags", outside))
    if trace.forged:
        body.append('<div><span class="lr-chip bad">forged observation tag</span></div>')
    return "".join(body)


def split_completion(text: str) -> dict[str, str]:
    """The think part, the answer part and whatever is outside both (a malformed completion keeps it all)."""
    think = _THINK.search(text)
    answer = _ANSWER.search(text, think.end() if think else 0)  # the answer after the thinking, never inside it
    spans = sorted(m.span() for m in (think, answer) if m)
    kept, position = [], 0
    for start, end in spans:
        kept.append(text[position:start])
        position = end
    rest = "".join(kept) + text[position:]
    return {
        "think": think.group(1).strip() if think else "",
        "answer": answer.group(1).strip() if answer else "",
        "rest": rest.strip(),
    }


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def completion_cards(records: list[dict[str, Any]]) -> str:
    """HTML cards: prompt, think, answer, each reward, total, advantage and the correct flag."""
    if not records:
        return "<p><i>No completions match (yet). They appear after the run's first logged step.</i></p>"
    cards = []
    for r in records:
        text = str(r.get("completion", ""))
        body = search_turns(text)
        if body is None:
            parts = split_completion(text)
            body = "".join(_box(key, label, parts[key]) for key, label in _PARTS if parts[key])
        correct = r.get("correct")
        kind = "" if correct is None else (" ok" if correct else " bad")
        badge = "" if correct is None else (f'<span class="lr-chip{kind}">{"correct" if correct else "wrong"}</span>')
        rewards = "".join(
            f'<span class="lr-chip">{html.escape(str(name).removesuffix("_reward"))} {fmt(value, 2)}</span>'
            for name, value in (r.get("rewards") or {}).items()
        )
        head = f"<b>step {fmt(r['step'])}</b>" if r.get("step") is not None else ""
        head += badge
        for key, label in (("reward", "total"), ("advantage", "adv")):
            if r.get(key) is not None:  # a try-it answer has no step, reward or advantage
                head += f'<span class="lr-chip">{label} {fmt(r[key], 2)}</span>'
        cards.append(
            f'<div class="lr-card{kind}"><div class="lr-head">{head}{rewards}</div>'
            f'<div class="lr-prompt">{html.escape(str(r.get("prompt", "")))}</div>{body}</div>'
        )
    return f'<div class="lr-cards">{"".join(cards)}</div>'


RUN_COLUMNS = ["run", "status", "step", "reward", "train acc.", "held-out acc.", "task", "model"]


def run_row(name: str, state: str, status: dict[str, Any], metrics: list[dict[str, Any]]) -> list[Any]:
    """One row of the runs table (the same facts as ``lowvram-r1 runs``)."""
    train = [r for r in metrics if r.get("kind") == "train"]
    evals = [r for r in metrics if r.get("kind") == "eval" and r.get("accuracy") is not None]
    last = train[-1] if train else {}
    step = f"{last.get('step', 0)}/{status.get('max_steps') or '?'}"
    held_out = "-"
    if evals:
        held_out = f"{100 * evals[-1]['accuracy']:.1f}%"
        if len(evals) > 1:
            held_out = f"{100 * evals[0]['accuracy']:.1f}% → {held_out}"
    train_acc = last.get("train_accuracy")
    return [
        name,
        state,
        step,
        fmt(last.get("reward")),
        "-" if train_acc is None else f"{100 * train_acc:.1f}%",
        held_out,
        status.get("task") or "-",
        _short_model(status.get("model")),
    ]


def _short_model(model: str | None) -> str:
    """A hub id as it is; a local folder by its last part (the full path is in the run's config.yaml)."""
    if not model:
        return "-"
    return f".../{model.rstrip('/').rsplit('/', 1)[-1]}" if model.startswith(("/", ".", "~")) else model


_STATE_ICONS = {"running": "●", "starting": "○", "finished": "✓", "stopped": "■", "failed": "✕", "died": "✕"}


def ago(seconds: float) -> str:
    """'12 s ago', '4 min ago', '3.2 h ago', '2.0 days ago'."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def status_line(name: str, state: str, status: dict[str, Any], metrics: list[dict[str, Any]]) -> str:
    """Markdown: state, progress, speed and the latest reward and accuracy of the run."""
    train = [r for r in metrics if r.get("kind") == "train"]
    last = train[-1] if train else {}
    step, total = last.get("step", 0), status.get("max_steps")
    parts = [f"{_STATE_ICONS.get(state, '')} **{name}** — {state}", f"step {step}/{total or '?'}"]
    times = [r["step_time"] for r in train[-20:] if r.get("step_time")]
    if times and state == "running" and total:
        left = (total - step) * sum(times) / len(times)
        parts.append(f"{sum(times) / len(times):.1f} s/step, ~{left / 60:.1f} min left")
    if last.get("reward") is not None:
        parts.append(f"reward {fmt(last['reward'])}")
    if last.get("train_accuracy") is not None:
        parts.append(f"train acc. {100 * last['train_accuracy']:.1f}%")
    if status.get("updated"):
        parts.append(f"updated {ago(time.time() - status['updated'])}")
    line = " · ".join(parts)
    if status.get("error"):
        line += f"\n\n`{status['error']}`"
    return line


def eval_summary(result: dict[str, Any] | None) -> str:
    """Markdown of eval.json (``lowvram-r1 eval``): accuracy, pass@k, maj@k, format rate."""
    if not result:
        return "No eval.json yet: `lowvram-r1 eval --config runs/NAME/config.yaml --adapter runs/NAME/adapter`"
    keys = ["accuracy", *sorted(k for k in result if k.startswith(("pass@", "maj@"))), "format_rate"]
    shown = " · ".join(f"{k} **{100 * result[k]:.1f}%**" for k in keys if isinstance(result.get(k), int | float))
    rows = int(result.get("n", 0))
    return f"**Evaluation** ({result.get('split', 'test')}, {rows} problems): {shown}"
