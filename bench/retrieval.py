"""BM25 retrieval speed on CPU (queries/s) for the search tasks, on the invented world at a chosen size: lowvram-r1's
``Retriever.search_many`` against a bare ``bm25s`` baseline (the same index loaded into memory, ``bm25s.tokenize`` +
``BM25.retrieve`` with its defaults), timed in alternating rounds in one process, ratio printed with its spread.

    python bench/retrieval.py --people 100000 --queries 2000     # 144,000 passages; goal: ours >= 500 queries/s
    python bench/retrieval.py --people 100000 --numba            # also bm25s's numba backend (if numba is installed)

Each round times every side on the same queries, in batches of 64 (a GRPO step's searches of one turn come as one
batch, see ``lowvram_r1.rollout.multiturn.roll_out``). "previous" is how lowvram-r1 called bm25s before
(memory-mapped index, ``n_threads=1``: a thread pool per call). The results are checked against the baseline: the
scores must be identical; passages may differ only where several passages share a score (bm25s breaks such ties
by numpy's introselect, which depends on the CPU; ours returns the earliest passage of the corpus).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from lowvram_r1.envs.bm25_query import available_memory, index_footprint
from lowvram_r1.envs.corpus import make_world, world_corpus_file
from lowvram_r1.envs.retriever import MAX_QUERY_CHARS, MAX_QUERY_TERMS, Retriever, build_index

BATCH = 64


def bm25s_side(folder: str, k: int, mmap: bool, **options: Any) -> Callable[[list[str]], list[list[tuple[str, float]]]]:
    """A search function through ``bm25s`` itself: tokenize, ``retrieve``, (passage id, score) pairs."""
    import bm25s

    backend = {"backend": options.pop("backend")} if "backend" in options else {}
    model = bm25s.BM25.load(folder, load_corpus=True, mmap=mmap, show_progress=False, **backend)

    def search(batch: list[str]) -> list[list[tuple[str, float]]]:
        terms = bm25s.tokenize(
            [q[:MAX_QUERY_CHARS] for q in batch], stopwords="en", return_ids=False, show_progress=False
        )
        docs, scores = model.retrieve([t[:MAX_QUERY_TERMS] for t in terms], k=k, show_progress=False, **options)
        pairs = zip(docs, scores, strict=True)
        return [[(d["id"], float(s)) for d, s in zip(row, values, strict=True) if s > 0] for row, values in pairs]

    return search


def timed(search: Callable[[list[str]], list[Any]], questions: list[str]) -> tuple[float, list[Any]]:
    """Queries per second of ``search`` over ``questions`` in batches, and its results."""
    found: list[Any] = []
    started = time.perf_counter()
    for start in range(0, len(questions), BATCH):
        found += search(questions[start : start + BATCH])
    return len(questions) / (time.perf_counter() - started), found


def compare(ours: list[list[tuple[str, float]]], bare: list[list[tuple[str, float]]]) -> tuple[int, int]:
    """(queries whose scores are identical, queries whose passages are identical too)."""
    same_scores = sum([s for _, s in a] == [s for _, s in b] for a, b in zip(ours, bare, strict=True))
    same_docs = sum(a == b for a, b in zip(ours, bare, strict=True))
    return same_scores, same_docs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000, help="invented people (passages: 1.44x this)")
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (median and spread)")
    parser.add_argument("--numba", action="store_true", help="also time bm25s's numba backend (JIT excluded)")
    args = parser.parse_args(argv)
    if args.people < 20 or args.queries < 1 or args.rounds < 1 or not 1 <= args.top_k <= 50:
        parser.error("need --people >= 20, --queries >= 1, --rounds >= 1 and --top-k in 1..50")
    out = sys.stdout.write
    corpus = world_corpus_file(0, args.people)
    started = time.monotonic()
    folder = build_index(corpus)
    built = time.monotonic() - started
    started = time.monotonic()
    retriever = Retriever(folder)
    loaded = time.monotonic() - started
    free = available_memory()
    out(
        f"{retriever.size} passages: index built in {built:.1f} s, loaded in {loaded:.1f} s "
        f"{'into memory' if retriever.in_memory else 'memory-mapped'} (footprint ~{index_footprint(folder) / 1e6:.0f}"
        f" MB, available {free / 1e6 if free else float('nan'):.0f} MB)\n"
    )
    questions = [q["question"] for q in make_world(0, args.people).questions[: args.queries]]

    def our_search(batch: list[str]) -> list[list[tuple[str, float]]]:
        return [[(p.id, p.score) for p in hits] for hits in retriever.search_many(batch, args.top_k)]

    sides: dict[str, Callable[[list[str]], list[Any]]] = {
        "lowvram-r1 Retriever": our_search,
        "bare bm25s (in memory)": bm25s_side(str(folder), args.top_k, mmap=False),
        "previous (mmap, n_threads=1)": bm25s_side(str(folder), args.top_k, mmap=True, n_threads=1),
    }
    if args.numba:
        numba_search = bm25s_side(str(folder), args.top_k, mmap=False, backend="numba")
        started = time.monotonic()
        numba_search(questions[:1])  # JIT compilation, once per process
        out(f"bm25s numba backend: JIT compiled in {time.monotonic() - started:.1f} s (not timed below)\n")
        sides["bm25s numba backend"] = numba_search
    rates: dict[str, list[float]] = {name: [] for name in sides}
    results: dict[str, list[Any]] = {}
    for _ in range(args.rounds):
        for name, search in sides.items():
            rate, results[name] = timed(search, questions)
            rates[name].append(rate)
    out(f"{len(questions)} queries, top-{args.top_k}, batches of {BATCH}, {args.rounds} alternating rounds:\n")
    for name, values in rates.items():
        out(f"  {name:30s} {statistics.median(values):7.0f} queries/s  (rounds: {[round(v) for v in values]})\n")
    ratios = [a / b for a, b in zip(rates["lowvram-r1 Retriever"], rates["bare bm25s (in memory)"], strict=True)]
    met = statistics.median(rates["lowvram-r1 Retriever"]) >= 500
    out(
        f"ratio ours / bare bm25s: {statistics.median(ratios):.1f}x (per-round {min(ratios):.1f}-{max(ratios):.1f}); "
        f"goal: ours >= 500 queries/s -> {'met' if met else 'NOT met'}\n"
    )
    same_scores, same_docs = compare(results["lowvram-r1 Retriever"], results["bare bm25s (in memory)"])
    out(
        f"same as bare bm25s: scores {same_scores}/{len(questions)} queries, passages {same_docs}/{len(questions)} "
        "(the others differ only among passages of equal score)\n"
    )
    return 0 if same_scores == len(questions) else 1


if __name__ == "__main__":
    raise SystemExit(main())
