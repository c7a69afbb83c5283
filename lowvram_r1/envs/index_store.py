"""Where a BM25 index lives on disk: what makes a folder one of our indexes, which corpus it was built from, and how
a new build is put in place without touching anything we did not write.

    check_target(Path("idx"))                         # ValueError if idx is a file, a link, or a foreign folder
    marker = read_index(Path("idx"))                  # the marker of one of our indexes, or None
    fits(marker, corpus_stamp(corpus))                # was it built from this corpus (same bytes)?
    install(scratch, Path("idx"))                     # move a finished build into place (old index of ours replaced)

A folder is ours when it holds our marker (a JSON object naming this format, or version 1's ``{corpus, passages}``)
and nothing else than the files an index build writes, each a regular file: a folder with any other entry is never
deleted or overwritten. The marker keys the
index on its corpus: size, modification time and the SHA-256 of its bytes, so an index built from another corpus (or
from an edited one) is rebuilt, never used silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MARKER = "lowvram_index.json"
FORMAT = "lowvram-r1 bm25 index"
VERSION = 2
# Every name an index build writes (bm25s' files, ours); a folder holding anything else is not ours.
INDEX_FILES = frozenset(
    {
        MARKER,
        "data.csc.index.npy",
        "indices.csc.index.npy",
        "indptr.csc.index.npy",
        "nonoccurrence_array.index.npy",
        "vocab.index.json",
        "params.index.json",
        "corpus.jsonl",
        "corpus.mmindex.json",
    }
)
_MAX_MARKER_BYTES = 64 << 10


def corpus_stamp(corpus: Path) -> dict[str, Any]:
    """The cheap part of a corpus' key: resolved path, size, modification time (the hash is added at build)."""
    info = corpus.stat()
    return {"corpus": str(corpus.resolve()), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as scan:
        return list(scan)


def read_index(folder: Path) -> dict[str, Any] | None:
    """The marker of ``folder`` if it is one of our indexes (see the module docstring), else None."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return None
        entries = _entries(folder)
    except OSError:
        return None
    for entry in entries:
        if entry.name not in INDEX_FILES or not entry.is_file(follow_symlinks=False):
            return None
    path = folder / MARKER
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode) or os.lstat(path).st_size > _MAX_MARKER_BYTES:
            return None
        marker = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict):
        return None
    if marker.get("format") == FORMAT or set(marker) == {"corpus", "passages"}:  # the latter: version 1's marker
        return marker
    return None


def fits(marker: dict[str, Any], stamp: dict[str, Any], corpus: Path) -> bool:
    """Was the index of ``marker`` built from ``corpus`` as it is now, and is it complete?"""
    if marker.get("version") != VERSION or marker.get("size") != stamp["size"]:
        return False
    if not isinstance(marker.get("passages"), int) or not isinstance(marker.get("sha256"), str):
        return False
    if marker.get("corpus") == stamp["corpus"] and marker.get("mtime_ns") == stamp["mtime_ns"]:
        return True
    return marker["sha256"] == file_sha256(corpus)  # moved, copied or touched: the same bytes are the same corpus


def check_target(target: Path) -> None:
    """Refuse a target we may not write into: anything but a missing path, an empty folder or one of our indexes."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise ValueError(f"index folder {target} is a symbolic link: pass --index-dir a real folder (new or empty)")
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"index folder {target} exists and is not a folder: pass --index-dir a new or empty folder")
    if _entries(target) and read_index(target) is None:
        raise ValueError(
            f"index folder {target} is not empty and is not a lowvram-r1 index, so nothing in it is touched: pass "
            "--index-dir (or the task option index_dir) a new or empty folder, or leave it out to use the cache"
        )


def scratch_beside(target: Path) -> Path:
    """A fresh folder next to ``target`` (same file system, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-build-", dir=target.parent))


def install(scratch: Path, target: Path) -> None:
    """Move the finished build ``scratch`` to ``target``: into a missing path or an empty folder by one rename; an
    old index of ours is moved aside first and removed after. Anything else is refused (nothing is deleted)."""
    check_target(target)
    if not os.path.lexists(target) or not _entries(target):
        os.replace(scratch, target)  # onto an empty folder too; fails (deleting nothing) if one appeared meanwhile
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
    os.rename(target, old / "index")
    os.rename(scratch, target)
    if read_index(old / "index") is not None:  # still ours after the move: remove it
        shutil.rmtree(old)
    else:  # changed under us: keep it, say where
        logger.warning("the old index of %s changed while it was replaced; it is kept in %s", target, old)
