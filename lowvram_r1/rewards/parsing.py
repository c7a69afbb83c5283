"""Getting text out of completions: plain strings or TRL's conversational form, and the tagged parts.

Every reward starts here so that all of them accept ``"text"`` and ``[{"role": "assistant", "content": "text"}]``
alike, and so that a hostile completion (not a string, huge, unbalanced tags) never raises.
"""

from __future__ import annotations

import re
from typing import Any

MAX_COMPLETION_CHARS = 100_000  # regexes below only ever see this much: bounds their time on huge inputs

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def completion_text(completion: Any) -> str:
    """The assistant text of one completion, whatever shape TRL handed us; ``""`` for anything unexpected."""
    if isinstance(completion, str):
        text = completion
    elif isinstance(completion, list | tuple) and completion:
        last = completion[-1]
        text = last.get("content", "") if isinstance(last, dict) else ""
        if isinstance(text, list):  # multimodal content blocks: keep the text parts
            text = "".join(part.get("text", "") for part in text if isinstance(part, dict))
    elif isinstance(completion, dict):
        text = completion.get("content", "")
    else:
        text = ""
    return text[:MAX_COMPLETION_CHARS] if isinstance(text, str) else ""


def prefill_of(prompt: Any) -> str:
    """The start of the answer written by the prompt itself: a final assistant message (chat prompts) or the text
    after the R1-Zero template's last "Assistant:" (plain prompts). Format rewards judge prefill + completion."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict) and prompt[-1].get("role") == "assistant":
        content = prompt[-1].get("content", "")
        return content if isinstance(content, str) else ""
    if isinstance(prompt, str) and "Assistant:" in prompt:
        return prompt.rsplit("Assistant:", 1)[1].lstrip()
    return ""


def answer_texts(completions: list[Any], prompts: list[Any] | None = None) -> list[str]:
    """Each completion's text, preceded by its prompt's prefill when there is one."""
    texts = [completion_text(c) for c in completions]
    if not prompts or len(prompts) != len(texts):
        return texts
    return [(prefill_of(p) + t)[:MAX_COMPLETION_CHARS] for p, t in zip(prompts, texts, strict=True)]


def final_part(text: str) -> str:
    """What follows the reasoning: the text after the last ``</think>``; ``""`` when a ``<think>`` is never closed.

    The answer the user sees is what comes after the reasoning (as TRL's ``reasoning_accuracy_reward`` reads
    it): an ``<answer>`` or ``\\boxed{}`` written inside ``<think>`` is a draft, not the final answer.
    """
    text = text[:MAX_COMPLETION_CHARS]
    closed = text.rfind("</think>")
    if closed >= 0:
        return text[closed + len("</think>") :]
    return "" if "<think>" in text else text


def extract_answer(text: str) -> str | None:
    """The content of the last ``<answer>…</answer>`` block after the reasoning, stripped; ``None`` if none."""
    matches = _ANSWER.findall(final_part(text))
    return matches[-1].strip() if matches else None
