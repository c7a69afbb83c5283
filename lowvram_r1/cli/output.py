"""How the commands print numbers.
"""

from __future__ import annotations

def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
