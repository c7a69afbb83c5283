"""Mathematical answer checking through math-verify, bounded in time, with ``\\boxed{}`` extraction.

Why math-verify: it parses LaTeX and plain expressions into sympy and compares them (``\\frac{1}{2}`` equals
``0.5``, ``x^2+2x`` equals ``x(x+2)``), which no regex can do. Its own timeouts bound each parse and compare.

    >>> is_equivalent("\\\\frac{1}{2}", "0.5")
    True
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from lowvram_r1.rewards.parsing import final_part

logger = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 300  # longer "answers" are not final answers; they would only cost parse time
MAX_NESTING = 8  # deeper bracket nesting than any real final answer: sympy's parser is slow on it
# Each parse and the comparison are bounded by math-verify's own timeouts: one check costs at most ~3 s (two
# symbolic sums take ~0.5 s), and the gold is parsed once per row (cached), not once per completion.
PARSE_SECONDS = 1
VERIFY_SECONDS = 1
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
# \mathrm{e} etc.: math-verify's extraction stops at these, so "1 - \frac{1}{\mathrm{e}}" used to parse as its
# prefix "1" (and equal "1 + \frac{1}{\mathrm{e}}"). The font command changes nothing mathematical: unwrap it.
_FONT = re.compile(r"\\(?:mathrm|textrm|mathit|mathsf|operatorname\*?)\s*\{([^{}]*)\}")
# Spacing commands mean nothing mathematically; a negative thin space takes the blanks after it too, as in
# math-verify's own normalisation (latex2sympy2_extended: r"\\!\s*"), so "11,\\! 111,\\! 100" reads as 11,111,100.
_SPACING = re.compile(r"\\!\s*|\\[,;:]|\\(?:q?quad)\b")


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


def normalize_latex(text: str) -> str:
    """What a human reads as the same answer: escaped currency ``\\$`` dropped (only an unescaped ``$``
    delimits math), spacing commands dropped, font commands unwrapped."""
    text = text.replace("\\$", "")
    text = _SPACING.sub("", text)
    return _FONT.sub(r"\1", text)


def _math_text(text: str) -> str:
    """The answer as math-verify should see it: normalised, and inside ``$...$`` unless it delimits itself."""
    text = normalize_latex(text)
    return text if "\\boxed" in text or _UNESCAPED_DOLLAR.search(text) else f"${text}$"


def _parse(text: str) -> list:
    from math_verify import parse

    if not plausible_answer(text):
        return []
    return parse(text, parsing_timeout=PARSE_SECONDS)


@lru_cache(maxsize=4096)
def _parse_gold(gold: str) -> tuple:
    return tuple(_parse(_math_text(gold)))


def parse_gold(gold: str) -> list | None:
    """The parsed gold answer, or ``None`` when math-verify can keep it only as a raw string (ungradable)."""
    parsed = list(_parse_gold(str(gold)))
    # math-verify falls back to the raw string when nothing parses; a gold that is only a string is unreadable
    return parsed if any(not isinstance(item, str) for item in parsed) else None


def _same_text(answer: str, gold: str) -> bool:
    def canonical(text: str) -> str:
        return "".join(normalize_latex(text).split()).strip("$.")

    return canonical(answer) == canonical(gold)


def is_equivalent(answer: str, gold: str) -> bool | None:
    """True/False when the gold parses; for a gold math-verify cannot parse (ungradable), True when the answer is
    the same text (whitespace, ``$`` and spacing aside) and ``None`` otherwise."""
    from math_verify import verify

    parsed_gold = parse_gold(gold)
    if parsed_gold is None:
        return True if _same_text(answer, str(gold)) else None
    parsed = _parse(_math_text(answer))
    if not parsed:
        return False
    return bool(verify(parsed_gold, parsed, timeout_seconds=VERIFY_SECONDS))


def extract_math_answer(text: str) -> str | None:
    """The final answer after the reasoning: the last ``\\boxed{}``, else the ``<answer>`` block's content.

    A ``\\boxed{}`` inside ``<think>`` is a draft and does not count (TRL's ``reasoning_accuracy_reward`` agrees).
    """
    final = final_part(text)
    boxed = last_boxed(final)
    if boxed is not None:
        return boxed
    match = re.findall(r"<answer>(.*?)</answer>", final, re.DOTALL)
    return match[-1].strip() if match else None
