"""What makes a folder one of our runs: a marker file only lowvram-r1 writes, ``.lowvram-r1-run``.

    claim_marker(run.marker)   # written when a trainer or the panel claims a new (or empty) folder; kept afterwards
    run.is_run()               # the marker, in our format; or a run older than the marker (see below)

A folder is ours when it holds the marker as a regular file (never a link) whose JSON says
``{"format": "lowvram-r1 run", "version": 1, "id": ...}``. Another tool's ``status.json`` with a ``state`` key, or
any single file with one of our names, is not enough: the marker's name and content are ours alone.

Runs written before the marker existed are still ours when they hold everything such a run wrote, each a regular
file: a ``status.json`` whose ``state`` is one of ours and a ``config.yaml`` that names every section of our config
and loads as a valid run config (another tool's files cannot pass both by accident). The next trainer to claim such
a run writes the marker, so the fallback is only ever needed once per old run.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from lowvram_r1.runs.files import is_regular, open_regular, read_bytes

FORMAT = "lowvram-r1 run"
VERSION = 1
_MARKER_LIMIT = 4096


def marker_text() -> str:
    return json.dumps({"format": FORMAT, "version": VERSION, "id": uuid.uuid4().hex, "created": time.time()})


def has_marker(marker: Path) -> bool:
    """``marker`` is our marker file: a regular file (not a link), in our format."""
    try:
        loaded = json.loads(read_bytes(marker, _MARKER_LIMIT))
    except (OSError, ValueError):
        return False
    return isinstance(loaded, dict) and loaded.get("format") == FORMAT and isinstance(loaded.get("version"), int)


def is_legacy_run(config_file: Path, our_state: bool) -> bool:
    """A run written before the marker: ``our_state`` (status.json's state is one of ours) and a config.yaml that
    names every section of our config and loads as a valid run config."""
    from lowvram_r1 import config

    if not (our_state and is_regular(config_file)):
        return False
    try:
        text = read_bytes(config_file, config.MAX_YAML_BYTES).decode("utf-8")
        data = config.parse_yaml(text, str(config_file))
        if not isinstance(data, dict) or set(config.SECTION_TYPES) - set(data):
            return False
        config.load(config_file)
    except (OSError, ValueError):
        return False
    return True


def is_ours(marker: Path, config_file: Path, our_state: bool) -> bool:
    """Is this folder one of our runs (see the module docstring)?"""
    return has_marker(marker) or is_legacy_run(config_file, our_state)


def claim_marker(marker: Path) -> None:
    """Write the marker into a folder we claim (kept if one of ours is there; a link or a FIFO is refused)."""
    if has_marker(marker):
        return
    if os.path.lexists(marker):  # a marker we cannot read as ours: replace it only if it is a plain file
        fd = open_regular(marker, os.O_WRONLY | os.O_TRUNC)
    else:
        fd = open_regular(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(marker_text())
