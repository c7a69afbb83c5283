"""BM25 over a passage corpus, on CPU (no VRAM), through ``bm25s``: the index is built once from a ``jsonl`` file of
``{id, title, text}`` rows and cached on disk, keyed by the file's path, size and modification time (and its bytes'
SHA-256, recorded in the index: see ``index_store``).

    retriever = Retriever.open("wiki.jsonl")          # builds the index on first use (progress bar), then loads it
    retriever.search("who founded quillmark", k=3)    # [Passage(id=..., title=..., text=..., score=...), ...]

    lowvram-r1 index --corpus wiki.jsonl              # the same build from the command line

Why bm25s: a maintained, pure-Python (numpy + scipy sparse) BM25 with on-disk save/load and a memory-mapped
corpus, fast enough on CPU (``bench/retrieval.py`` measures queries/s). Queries are bounded (characters and
terms) so a hostile query costs no more than a normal one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lowvram_r1.envs.corpus import cache_dir
from lowvram_r1.envs.index_store import (
    FORMAT,
    MARKER,
    VERSION,
    check_target,
    corpus_stamp,
    fits,
    install,
    read_index,
    scratch_beside,
)

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500
MAX_QUERY_TERMS = 32


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str
    score: float


def read_corpus(path: Path) -> list[dict[str, str]]:
    """Corpus rows as ``{id, title, text}`` strings; a clear ``ValueError`` naming the line that is wrong."""
    return _read_rows(Path(path))[0]


def _read_rows(path: Path) -> tuple[list[dict[str, str]], str]:
    """The rows and the SHA-256 of the file's bytes (one pass). A row the index could not store as it is (text that
    is not valid Unicode, such as a lone surrogate ``"\\ud800"``) is refused here, naming its line: bm25s would skip
    it when saving and shift every later passage."""
    rows = []
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for number, data in enumerate(file, 1):
            digest.update(data)
            if not data.strip():
                continue
            try:
                raw = json.loads(data)
            except (ValueError, RecursionError) as error:  # bad JSON, bad UTF-8, or nested past Python's stack
                detail = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]
                raise ValueError(f"corpus {path} line {number} is not JSON: {detail}") from None
            if not isinstance(raw, dict) or ("text" not in raw and "contents" not in raw):
                raise ValueError(
                    f"corpus {path} line {number}: rows need a text field (and id, title), or FlashRAG's "
                    "contents field (title, newline, text)"
                )
            title, text = str(raw.get("title", "")), str(raw.get("text", ""))
            if "text" not in raw:  # FlashRAG's layout (Search-R1's wiki-18 too): '"Title"\ntext' in one field
                title, _, text = str(raw["contents"]).partition("\n")
                title = title.strip().strip('"')
            row = {"id": str(raw.get("id", number - 1)), "title": title, "text": text}
            for field, value in row.items():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as error:
                    raise ValueError(
                        f"corpus {path} line {number}: field {field} holds {value[error.start : error.end]!r} at "
                        f"character {error.start}, which is not valid Unicode (a lone surrogate escape): fix or drop "
                        "that row, the index cannot store it"
                    ) from None
            rows.append(row)
    if not rows:
        raise ValueError(f"corpus {path} holds no passages")
    return rows, digest.hexdigest()


def index_key(corpus: Path) -> str:
    stat = corpus.stat()
    blob = f"{corpus.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{VERSION}"
    return f"{corpus.stem}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def default_index_dir(corpus: Path) -> Path:
    return cache_dir() / "bm25" / index_key(corpus)


def _tokenize(texts: list[str], progress: bool = False) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=progress)


def build_index(corpus: Path, index_dir: Path | str | None = None, progress: bool = False) -> Path:
    """Build (or find) the BM25 index of ``corpus``; returns its folder. Built into a fresh folder beside the target
    and renamed into place (see ``index_store``): a killed build leaves no half index, a folder that is not one of
    our indexes is refused untouched, and an index of another corpus is rebuilt, never used."""
    import bm25s

    corpus = Path(corpus)
    if not corpus.is_file():
        raise ValueError(f"corpus file {corpus} does not exist: pass a jsonl of {{id, title, text}} rows")
    target = Path(os.path.abspath(index_dir)) if index_dir else default_index_dir(corpus)
    stamp = corpus_stamp(corpus)
    old = read_index(target)
    if old is not None and fits(old, stamp, corpus):
        return target
    check_target(target)  # before reading the corpus: a folder we may not replace is refused at once
    if old is not None:
        logger.warning(
            "index %s is of another corpus (%s) or format: rebuilding it for %s", target, old.get("corpus"), corpus
        )
    rows, sha256 = _read_rows(corpus)
    logger.info("indexing %d passages of %s with BM25 (once; cached in %s)", len(rows), corpus, target)
    scratch = scratch_beside(target)
    try:
        model = bm25s.BM25()
        model.index(_tokenize([f"{r['title']} {r['text']}" for r in rows], progress), show_progress=progress)
        model.save(str(scratch), corpus=rows, show_progress=progress, raise_on_serialization_error=True)
        saved = model.scores["num_docs"], len(json.loads((scratch / "corpus.mmindex.json").read_text()))
        if saved != (len(rows), len(rows)):
            raise ValueError(f"the index of {corpus} holds {saved} passages, not {len(rows)}: please report this")
        marker = {"format": FORMAT, "version": VERSION, **stamp, "sha256": sha256, "passages": len(rows)}
        (scratch / MARKER).write_text(json.dumps(marker))
        current = read_index(target)
        if current is None or not fits(current, stamp, corpus):  # else another process installed it meanwhile
            install(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


class Retriever:
    """Top-k BM25 passages for a query (see the module docstring)."""

    def __init__(self, index_dir: Path, in_memory: bool | None = None) -> None:
        from lowvram_r1.envs.bm25_query import FastBM25, load_index

        self.index_dir = Path(index_dir)
        self.model, self.in_memory = load_index(self.index_dir, in_memory)  # None: in memory when it fits
        self.size = len(self.model.corpus)
        self._fast = FastBM25(self.model)

    @classmethod
    def open(cls, corpus: str | Path, index_dir: str | Path | None = None) -> Retriever:
        """The retriever of ``corpus`` (index built on first use), shared within a process."""
        folder = build_index(Path(corpus), Path(index_dir) if index_dir else None)
        marker = read_index(folder) or {}
        return _opened(str(folder), str(marker.get("sha256")))  # a rebuilt folder is opened afresh

    def search(self, query: str, k: int) -> list[Passage]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: list[str], k: int) -> list[list[Passage]]:
        """Top-``k`` passages per query (fewer when fewer match; none for an empty query), best first."""
        terms = [t[:MAX_QUERY_TERMS] for t in _tokenize([str(q)[:MAX_QUERY_CHARS] for q in queries])]
        found = self._fast.top_k_many(terms, max(1, min(int(k), self.size)))  # see lowvram_r1.envs.bm25_query
        return [[_passage(doc, score) for doc, score in hits] for hits in found]


def _passage(doc: Any, score: float) -> Passage:
    return Passage(str(doc.get("id", "")), str(doc.get("title", "")), str(doc.get("text", "")), score)


@functools.lru_cache(maxsize=8)
def _opened(folder: str, corpus_sha256: str) -> Retriever:
    return Retriever(Path(folder))
