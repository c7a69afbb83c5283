"""Loading and querying a saved ``bm25s`` index fast on CPU: the index is read into memory when it fits (memory-mapped
otherwise), and each query is scored by ``bm25s``'s own scorer and its top-k picked without ``bm25s.retrieve``'s
per-call thread pool and slow selection.

    model, in_memory = load_index(folder)                 # in memory when it fits, else memory-mapped
    FastBM25(model).top_k_many([["vesna", "torrik"]], k=3)  # [[(corpus row, score), ...]], best first

Same scores as ``bm25s``: ``model.get_scores_from_ids`` computes the dense float32 score of every passage exactly as
``BM25.retrieve``'s numpy backend does. Only the top-k selection differs. ``bm25s`` uses ``np.argpartition``, which
on this corpus spends ~2.5 ms of the ~3 ms a query costs (most scores are equal: every person's page shares
"born", so introselect meets thousands of ties) and breaks ties in an order that depends on numpy's build and CPU
(AVX512 and AVX2 builds select differently). Here each score is packed with its passage number into one unique
64-bit key (score bits high, inverted passage number low) and ``np.partition`` runs on those keys: ~7x faster, and
ties always go to the passage that comes first in the corpus, on every machine.

Memory: the index's arrays plus its corpus as Python dicts (~6x the corpus file, measured on the invented world)
are loaded when that estimate is at most a quarter of the memory available now (``MemAvailable``); otherwise the
arrays and the corpus stay memory-mapped (Wikipedia-sized corpora), which only makes fetching passages slower.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CORPUS_FACTOR = 6  # bytes of Python dicts per byte of corpus.jsonl (~5.3 measured on the invented world's corpus)
MEMORY_SHARE = 4  # load into memory when the estimate is at most 1/4 of the available memory
_ARRAYS = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "vocab.index.json")
_LOW = np.uint64(0xFFFFFFFF)
_HINT = 256  # passages per rare word used to bound the k-th best score
_SMALL = 4096  # rank at most this many passages by sorting; more: partition unique keys over all


def available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``; else free physical pages); None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def index_footprint(index_dir: Path) -> int:
    """Estimated bytes the index takes once loaded into memory: its arrays and vocabulary, and its corpus."""
    folder = Path(index_dir)
    arrays = sum((folder / name).stat().st_size for name in _ARRAYS if (folder / name).is_file())
    corpus = folder / "corpus.jsonl"
    return arrays + CORPUS_FACTOR * (corpus.stat().st_size if corpus.is_file() else 0)


def fits_in_memory(index_dir: Path, available: int | None) -> bool:
    """Whether to load the index into memory: its footprint is at most ``1/MEMORY_SHARE`` of ``available``."""
    return available is not None and index_footprint(index_dir) * MEMORY_SHARE <= available


def load_index(index_dir: Path, in_memory: bool | None = None) -> tuple[Any, bool]:
    """The ``bm25s.BM25`` saved in ``index_dir`` with its corpus, and whether it was loaded into memory
    (``in_memory=None``: when :func:`fits_in_memory`; True / False force it)."""
    import bm25s

    if in_memory is None:
        in_memory = fits_in_memory(index_dir, available_memory())
    model = bm25s.BM25.load(str(index_dir), load_corpus=True, mmap=not in_memory, show_progress=False)
    logger.debug("BM25 index %s loaded %s", index_dir, "into memory" if in_memory else "memory-mapped")
    return model, in_memory


def _order_keys(scores: np.ndarray, low: np.ndarray) -> np.ndarray:
    """One unique uint64 per passage that sorts as (score, then earlier passage first): the float32 score's bits
    made order-preserving as an unsigned integer, above the inverted passage number (``low``)."""
    bits = scores.view(np.uint32)
    if bits.max(initial=0) >> 31:  # a negative score or -0.0 (made +0.0): flip so unsigned order is float order
        bits = (scores + np.float32(0)).view(np.uint32)
        bits = np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(0x80000000))
    keys = bits.astype(np.uint64)
    keys <<= np.uint64(32)
    keys |= low
    return keys


def top_k_scores(
    scores: np.ndarray, k: int, low: np.ndarray | None = None, hint: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best passages of a dense float32 score vector as (passage numbers, scores), best first; equal
    scores in corpus order. ``low``: ``0xFFFFFFFF - arange(len(scores))`` as uint64 (pass it to reuse it).
    ``hint``: any passage numbers likely to score high (a rare query word's postings): the k-th best score among
    them (distinct passages) bounds the k-th best overall from below, so only passages scoring at least that much
    are ranked."""
    n = len(scores)
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=scores.dtype)
    if hint is not None and len(hint) >= k:
        some = scores[hint]
        floor = np.partition(some, len(some) - k)[len(some) - k]
        ranked = np.flatnonzero(scores >= floor)  # holds the top k and every passage tied with the k-th
        if k <= len(ranked) <= _SMALL:
            found = ranked[np.lexsort((ranked, -scores[ranked]))[:k]]
            return found, scores[found]
    if low is None:
        low = _LOW - np.arange(n, dtype=np.uint64)
    keys = _order_keys(np.ascontiguousarray(scores, dtype=np.float32), low)
    keys.partition(n - k)
    best = np.sort(keys[n - k :])[::-1]
    found = (_LOW - (best & _LOW)).astype(np.int64)
    return found, scores[found]


class FastBM25:
    """Top-k queries on a loaded ``bm25s.BM25`` (see the module docstring); safe to share between threads."""

    def __init__(self, model: Any) -> None:
        if model.scores["num_docs"] >= 2**32:
            raise ValueError("indexes of 2**32 passages or more are not supported: split the corpus")
        self.model = model
        self.size = int(model.scores["num_docs"])
        self._low = _LOW - np.arange(self.size, dtype=np.uint64)

    def top_k(self, terms: Sequence[str], k: int) -> list[tuple[Any, float]]:
        """(corpus row, score) of the ``k`` best passages for one tokenised query, best first; passages scoring 0
        or less are left out (so an empty query, or one of unknown words only, finds nothing)."""
        ids = self.model.get_tokens_ids(list(terms))
        if not ids:
            return []
        scores = self.model.get_scores_from_ids(ids)
        found, values = top_k_scores(scores, k, self._low, self._rarest(ids, k))
        corpus = self.model.corpus
        return [(corpus[int(i)], float(s)) for i, s in zip(found, values, strict=True) if s > 0]

    def _rarest(self, ids: list[int], k: int) -> np.ndarray:
        """Distinct passages holding the query's rarest words (at most ``_HINT`` of each word's), at least ``k``
        when the query's words are in that many: any passages do for a lower bound, high-scoring ones make it tight."""
        indptr, indices = self.model.scores["indptr"], self.model.scores["indices"]
        spans = sorted((int(indptr[t + 1] - indptr[t]), int(indptr[t])) for t in set(ids))
        parts, total = [], 0
        for length, start in spans:
            parts.append(np.asarray(indices[start : start + min(length, _HINT)]))
            total += len(parts[-1])
            if total >= k:
                break
        if len(parts) == 1:
            return parts[0]  # a word's postings name each passage once
        hint = np.sort(np.concatenate(parts))
        return hint[np.concatenate(([True], hint[1:] != hint[:-1]))]  # a passage counted twice would raise the bound

    def top_k_many(self, queries: Sequence[Sequence[str]], k: int) -> list[list[tuple[Any, float]]]:
        """:meth:`top_k` for each query; a query repeated in the batch (a GRPO group often searches the same
        words) is scored once."""
        done: dict[tuple[str, ...], list[tuple[Any, float]]] = {}
        results = []
        for terms in queries:
            key = tuple(terms)
            if key not in done:
                done[key] = self.top_k(key, k)
            results.append(done[key])
        return results
