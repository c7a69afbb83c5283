"""Safe arithmetic for equation rewards: an AST walker over ``+ - * /``, parentheses and integer literals.

Why our own walker and not ``eval``: model output is hostile input. This walker accepts only the four
operators and integer literals, bounds the text length, the tree depth and the size of every intermediate
value, and computes with exact rationals (so ``(1/3)*3 == 1``). It never raises: a malformed, too large or
dividing-by-zero expression evaluates to ``None``.

    >>> evaluate("(1/3)*3")
    Fraction(1, 1)
    >>> numbers_in("(25 - 5) × 3")
    [25, 5, 3]
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

MAX_EXPRESSION_CHARS = 200
MAX_DEPTH = 32
MAX_MAGNITUDE = 10**12  # any intermediate value beyond this is rejected, which also bounds time

_ALLOWED_CHARS = re.compile(r"^[\d\s+\-*/().]+$")
_UNICODE_OPERATORS = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-"})
_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
}


def normalize_expression(text: str) -> str | None:
    """Return the expression with unicode operators mapped to ASCII and any ``= target`` tail removed.

    ``None`` when the text is too long or holds anything but digits, operators, parentheses and spaces.
    """
    if not isinstance(text, str) or len(text) > MAX_EXPRESSION_CHARS:
        return None
    expression = text.translate(_UNICODE_OPERATORS).strip()
    if expression.count("=") == 1:  # "expr = target" is accepted; the left side is what we score
        expression = expression.split("=")[0].strip()
    if not expression or not _ALLOWED_CHARS.match(expression) or "**" in expression or "//" in expression:
        return None
    return expression


def _walk(node: ast.AST, depth: int) -> Fraction:
    if depth > MAX_DEPTH:
        raise ValueError("too deep")
    if isinstance(node, ast.Expression):
        return _walk(node.body, depth + 1)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        value = Fraction(node.value)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _walk(node.operand, depth + 1)
        value = -operand if isinstance(node.op, ast.USub) else operand
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left, right = _walk(node.left, depth + 1), _walk(node.right, depth + 1)
        if right == 0:
            raise ZeroDivisionError
        value = left / right
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        value = _BINARY[type(node.op)](_walk(node.left, depth + 1), _walk(node.right, depth + 1))
    else:
        raise ValueError(f"not allowed: {type(node).__name__}")
    if abs(value.numerator) > MAX_MAGNITUDE or value.denominator > MAX_MAGNITUDE:
        raise ValueError("too large")
    return value


def evaluate(text: str) -> Fraction | None:
    """Exact value of an arithmetic expression, or ``None`` if it is not a safe, valid, finite expression."""
    expression = normalize_expression(text)
    if expression is None:
        return None
    try:
        return _walk(ast.parse(expression, mode="eval"), 0)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, MemoryError):
        return None


def numbers_in(text: str) -> list[int]:
    """The integer literals of an expression, in order (``= target`` tail excluded)."""
    expression = normalize_expression(text)
    if expression is None:
        return []
    return [int(token) for token in re.findall(r"\d+", expression)]
