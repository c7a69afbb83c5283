"""BM25 over a passage corpus, on CPU (no VRAM), through ``bm25s``: the index is built once from a ``jsonl`` file of
``{id, title, text}`` rows and cached on disk, keyed by the file's path, size and modification time.

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
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lowvram_r1.envs.corpus import cache_dir

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500
MAX_QUERY_TERMS = 32
INDEX_VERSION = 1
_MARKER = "lowvram_index.json"


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str
    score: float


def read_corpus(path: Path) -> list[dict[str, str]]:
    """Corpus rows as ``{id, title, text}`` strings; a clear ``ValueError`` naming the line that is wrong."""
    rows = []
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"corpus {path} line {number} is not JSON: {error}") from error
            if not isinstance(raw, dict) or ("text" not in raw and "contents" not in raw):
                raise ValueError(
                    f"corpus {path} line {number}: rows need a text field (and id, title), or FlashRAG's "
                    "contents field (title, newline, text)"
                )
            title, text = str(raw.get("title", "")), str(raw.get("text", ""))
            if "text" not in raw:  # FlashRAG's layout (Search-R1's wiki-18 too): '"Title"\ntext' in one field
                title, _, text = str(raw["contents"]).partition("\n")
                title = title.strip().strip('"')
            rows.append({"id": str(raw.get("id", number - 1)), "title": title, "text": text})
    if not rows:
        raise ValueError(f"corpus {path} holds no passages")
    return rows


def index_key(corpus: Path) -> str:
    stat = corpus.stat()
    blob = f"{corpus.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{INDEX_VERSION}"
    return f"{corpus.stem}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def default_index_dir(corpus: Path) -> Path:
    return cache_dir() / "bm25" / index_key(corpus)


def _tokenize(texts: list[str], progress: bool = False) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=progress)


def build_index(corpus: Path, index_dir: Path | None = None, progress: bool = False) -> Path:
    """Build (or find) the BM25 index of ``corpus``; returns its folder. Built into a scratch folder and moved into
    place, so a killed build never leaves half an index behind."""
    import bm25s

    corpus = Path(corpus)
    if not corpus.is_file():
        raise ValueError(f"corpus file {corpus} does not exist: pass a jsonl of {{id, title, text}} rows")
    target = Path(index_dir) if index_dir else default_index_dir(corpus)
    if (target / _MARKER).is_file():
        return target
    rows = read_corpus(corpus)
    logger.info("indexing %d passages of %s with BM25 (once; cached in %s)", len(rows), corpus, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model = bm25s.BM25()
        model.index(_tokenize([f"{r['title']} {r['text']}" for r in rows], progress), show_progress=progress)
        model.save(str(scratch), corpus=rows, show_progress=progress)
        (scratch / _MARKER).write_text(json.dumps({"corpus": str(corpus), "passages": len(rows)}))
        if target.exists():  # an incomplete folder from a killed build
            shutil.rmtree(target, ignore_errors=True)
        os.replace(scratch, target)
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
        return _opened(str(folder))

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
def _opened(folder: str) -> Retriever:
    return Retriever(Path(folder))
