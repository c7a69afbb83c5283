"""Where things are, for tests in any folder of ``tests/``: the repository's root, the package, this folder."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PACKAGE = ROOT / "lowvram_r1"
