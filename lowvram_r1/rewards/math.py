"""Mathematical answer checking through math-verify, bounded in time, with ``\\boxed{}`` extraction.

Why math-verify: it parses LaTeX and plain expressions into sympy and compares them (``\\frac{1}{2}`` equals
``0.5``, ``x^2+2x`` equals ``x(x+2)``), which no regex can do. Its own timeouts bound each parse and compare.

    >>> is_equivalent("\\\\frac{1}{2}", "0.5")
    True
"""

from __future__ import annotations

import logging
import re

logger = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 300  # longer "answers" are not final answers; they would only cost parse time
MAX_NESTING = 8  # deeper bracket nesting than any real final answer: sympy's parser is slow on it
PARSE_SECONDS = 2
VERIFY_SECONDS = 2


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (balanced braces), or ``None``."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for index in range(brace, min(len(text), brace + MAX_ANSWER_CHARS)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[brace + 1 : index]
    return None


def plausible_answer(text: str) -> bool:
    """Short, balanced and shallow enough to be a final answer: the cheap gate before sympy sees it."""
    if len(text) > MAX_ANSWER_CHARS:
        return False
    depth = 0
    for char in text:
        depth += 1 if char in "([{" else -1 if char in ")]}" else 0
        if depth < 0 or depth > MAX_NESTING:
            return False
    return depth == 0


def _parse(text: str) -> list:
    from math_verify import parse

    if not plausible_answer(text):
        return []
    return parse(text, parsing_timeout=PARSE_SECONDS)


def parse_gold(gold: str) -> list | None:
    """The parsed gold answer, or ``None`` when math-verify cannot read it (the row is then skipped, not failed)."""
    text = str(gold)
    parsed = _parse(text if "\\boxed" in text or "$" in text else f"${text}$")
    # math-verify falls back to the raw string when nothing parses; a gold that is only a string is unreadable
    return parsed if any(not isinstance(item, str) for item in parsed) else None


def is_equivalent(answer: str, gold: str) -> bool | None:
    """True/False when both parse; ``None`` when the gold does not parse."""
    from math_verify import verify

    parsed_gold = parse_gold(gold)
    if parsed_gold is None:
        return None
    candidate = answer if "\\boxed" in answer or "$" in answer else f"${answer}$"
    parsed = _parse(candidate)
    if not parsed:
        return False
    return bool(verify(parsed_gold, parsed, timeout_seconds=VERIFY_SECONDS))


def extract_math_answer(text: str) -> str | None:
    """The boxed answer if any, else the ``<answer>`` block's content."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    match = re.findall(r"<answer>(.*?)</answer>", text[:100_000], re.DOTALL)
    return match[-1].strip() if match else None
