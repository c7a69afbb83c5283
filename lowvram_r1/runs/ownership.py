"""What makes a folder one of our runs: a marker file only lowvram-r1 writes, ``.lowvram-r1-run``.

    claim_marker(run)      # written when a trainer or the panel claims a new (or empty) folder; kept afterwards
    is_ours(run)           # the marker, in our format; or a run older than the marker (see below)

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

from lowvram_r1.runs import STATES, RunDir, read_regular
from lowvram_r1.runs.files import is_regular, open_regular

FORMAT = "lowvram-r1 run"
VERSION = 1
_MARKER_LIMIT = 4096


def marker_text() -> str:
    return json.dumps({"format": FORMAT, "version": VERSION, "id": uuid.uuid4().hex, "created": time.time()})


def has_marker(run: RunDir) -> bool:
    """The folder holds our marker: a regular file, in our format."""
    try:
        marker = json.loads(read_regular(run.path / RunDir.MARKER, _MARKER_LIMIT))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format") == FORMAT and isinstance(marker.get("version"), int)


def is_legacy_run(run: RunDir) -> bool:
    """A run written before the marker: our status.json state and a config.yaml that loads as our config."""
    from lowvram_r1 import config

    if not (is_regular(run.config) and run.status().get("state") in STATES):
        return False
    try:
        data = config.parse_yaml(read_regular(run.config, config.MAX_YAML_BYTES), str(run.config))
        if not isinstance(data, dict) or set(config.SECTION_TYPES) - set(data):
            return False
        config.load(run.config)
    except (OSError, ValueError):
        return False
    return True


def is_ours(run: RunDir) -> bool:
    """Is this folder one of our runs (see the module docstring)?"""
    return has_marker(run) or is_legacy_run(run)


def claim_marker(run: RunDir) -> None:
    """Write the marker into a folder we claim (kept if one of ours is there; a link or a FIFO is refused)."""
    if has_marker(run):
        return
    path = run.path / RunDir.MARKER
    if os.path.lexists(path):  # a marker we cannot read as ours: replace it only if it is a plain file
        fd = open_regular(path, os.O_WRONLY | os.O_TRUNC)
    else:
        fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(marker_text())
