"""``lowvram-r1 recipes``: the recipes shipped inside the package — list them, print one, copy one to edit.

    lowvram-r1 recipes                          # name, task, tier, model, what it is for
    lowvram-r1 recipes show gsm8k/8gb           # the YAML, with its launch command on the first line
    lowvram-r1 recipes copy gsm8k/8gb my.yaml   # an editable copy (--force to replace an existing file)
    lowvram-r1 train --config my.yaml           # ... then train from it (or --config gsm8k/8gb as shipped)

The accelerate launcher configs travel the same way (``--accelerate-config ddp``) and are listed apart.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from lowvram_r1.recipes import accelerate_configs, recipe_names, recipe_path


@dataclass(frozen=True)
class RecipeInfo:
    name: str  # what --config takes: gsm8k/8gb
    task: str
    tier: str  # "8 GB", "16 GB (T4)", "CPU"
    model: str
    purpose: str  # the header's Target: / Hardware: line, first sentence


def first_clause(text: str) -> str:
    """``text`` up to its first ``.``, ``,`` or ``;`` outside parentheses: "a 12 GB GPU (e.g. RTX 3060 / 4070)"."""
    depth = 0
    for i, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if depth == 0 and char in ".,;" and (i + 1 == len(text) or text[i + 1] == " "):
            return text[:i].strip()
    return text.strip()


def describe(name: str, path: Path) -> RecipeInfo:
    """One recipe's row, read from its YAML and its header comment."""
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    task = str((data.get("task") or {}).get("name", "countdown"))
    model = str((data.get("model") or {}).get("name", "tiny"))
    tier_match = re.search(r"(\d+)gb$", name)
    tier = f"{tier_match.group(1)} GB" if tier_match else ("CPU" if model == "tiny" else "-")
    if "t4" in name.split("/")[-1]:
        tier += " (T4)"
    purpose = ""
    for line in text.splitlines():
        found = re.match(r"#\s*(?:Target|Hardware):\s*(.*)", line)
        if found:
            purpose = first_clause(found.group(1))
            break
    return RecipeInfo(name, task, tier, model, purpose)


def table() -> str:
    """Every shipped recipe, one line each, then the accelerate configs."""
    rows = [describe(name, path) for name, path in recipe_names().items()]
    header = ("recipe", "task", "tier", "model", "for")
    cells = [header, *[(r.name, r.task, r.tier, r.model, r.purpose) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]) for row in cells]
    lines.append("")
    lines.append("use: lowvram-r1 train --config NAME | recipes show NAME | recipes copy NAME my.yaml")
    launchers = ", ".join(accelerate_configs())
    lines.append(f"accelerate configs (--accelerate-config NAME, with --num-processes): {launchers}")
    return "\n".join(lines)


def _known(name: str) -> Path:
    path = recipe_path(name)
    if path is None:
        shipped = accelerate_configs().get(name.removeprefix("accelerate/").removesuffix(".yaml"))
        if shipped is not None:
            return shipped
        raise ValueError(f"no shipped recipe named {name!r}: `lowvram-r1 recipes` lists them (e.g. gsm8k/8gb)")
    return path


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("recipes", help="list, show or copy the recipes shipped with the package")
    actions = parser.add_subparsers(dest="recipes_action", parser_class=type(parser))
    show = actions.add_parser("show", help="print a recipe's YAML")
    show.add_argument("name", help="a recipe name, e.g. gsm8k/8gb (or an accelerate config: ddp)")
    copy = actions.add_parser("copy", help="write an editable copy of a recipe")
    copy.add_argument("name", help="a recipe name, e.g. gsm8k/8gb")
    copy.add_argument("dest", help="file to write (a folder gets NAME's file name)")
    copy.add_argument("--force", action="store_true", help="replace DEST if it exists")


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "recipes_action", None)
    if action is None:
        print(table())
        return 0
    source = _known(args.name)
    if action == "show":
        print(source.read_text(encoding="utf-8"), end="")
        return 0
    dest = Path(args.dest)
    if dest.is_dir():
        dest = dest / source.name
    if dest.exists() and not args.force:
        raise ValueError(f"{dest} already exists: pick another name, or add --force to replace it")
    if not dest.parent.is_dir():
        raise ValueError(f"folder {dest.parent} does not exist: create it first")
    dest.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    print(f"wrote {dest} (from {args.name}); train with: lowvram-r1 train --config {dest}")
    return 0
