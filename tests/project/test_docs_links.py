"""Every link in the README, CONTRIBUTING.md, docs/*.md and examples/**/*.md resolves inside the repository, and none
points outside it: a reader of a clone (or of a copy without network) never meets a dead or foreign link.

Checked: Markdown links and images ``[text](target)``, reference definitions ``[id]: target``, autolinks
``<scheme:...>`` and HTML ``href`` / ``src``. Code spans and fenced code are not links and are skipped (a command
that names a URL, such as the Colab address, is text to copy). The README stays a front door: at most ~250 lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.paths import ROOT

PAGES = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").rglob("*.md")]
)
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)
AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]*)>")
HTML = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose(text: str) -> str:
    """``text`` without fenced code blocks and code spans (same length per line is not needed: links only)."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.DOTALL)


def links(page: Path) -> list[str]:
    text = prose(page.read_text(encoding="utf-8"))
    found = [m.group(1) for pattern in (INLINE, REFERENCE, AUTOLINK, HTML) for m in pattern.finditer(text)]
    return [target for target in found if target]


def problem(page: Path, target: str) -> str | None:
    """Why ``target`` (a link on ``page``) is not allowed, or ``None``."""
    if SCHEME.match(target) or target.startswith("//"):
        return "points outside the repository"
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    if not path:  # a link to a heading of the same page
        return None
    if path.startswith("/"):
        return "is absolute: write it relative to the page"
    resolved = (page.parent / path).resolve()
    if not resolved.is_relative_to(ROOT):
        return "leaves the repository"
    if not resolved.exists():
        return "does not exist"
    return None


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_link_resolves_inside_the_repository(page: Path) -> None:
    bad = [f"{target}: {why}" for target in links(page) if (why := problem(page, target))]
    assert not bad, f"{page.relative_to(ROOT)}:\n  " + "\n  ".join(bad)


def test_the_pages_a_reader_needs_exist_and_are_linked() -> None:
    for name in ("README.md", "CONTRIBUTING.md", "docs/README.md", "examples/README.md"):
        assert (ROOT / name).is_file(), name
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250, "the README is a front door: move details into docs/"
    assert "docs/panel.png" in readme and "make demo" in readme and "make test" in readme
    index = set(links(ROOT / "docs" / "README.md"))
    unlisted = [p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md" and p.name not in index]
    assert not unlisted, f"add these pages to docs/README.md: {unlisted}"


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("https://example.com/x", "points outside the repository"),
        ("//example.com/x", "points outside the repository"),
        ("mailto:someone@example.com", "points outside the repository"),
        ("/etc/passwd", "is absolute: write it relative to the page"),
        ("../../outside.md", "leaves the repository"),
        ("docs/no-such-page.md", "does not exist"),
        ("docs/gpu.md#cpu-only-machines", None),
        ("#a-heading", None),
    ],
)
def test_the_checker_itself(target: str, why: str | None) -> None:
    assert problem(ROOT / "README.md", target) == why


def test_links_are_found_in_every_form_and_code_is_not_a_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "[a](one.md) ![b](two.png) [c](three.md \"a title\") [d][ref] <https://five> <a href='six.html'>x</a>\n\n"
        "[ref]: seven.md\n\n`[not](code.md)` and\n\n```\n[not](fenced.md) https://also-not\n```\n",
        encoding="utf-8",
    )
    assert sorted(links(page)) == sorted(["one.md", "two.png", "three.md", "https://five", "six.html", "seven.md"])
