"""``lowvram-r1 index``: build the BM25 index of a passage corpus for the search tasks (cached).

lowvram-r1 index --corpus passages.jsonl      # a {id, title, text} jsonl; default: the invented world's corpus
"""

from __future__ import annotations

import argparse


def add(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser("index", help="build the BM25 index of a passage corpus for the search tasks")
    index.add_argument("--corpus", help="jsonl of {id, title, text} rows (default: the invented world's corpus)")
    index.add_argument("--index-dir", help="where to put the index (default: the cache, keyed by the corpus file)")


def run(args: argparse.Namespace) -> int:
    import time

    from lowvram_r1.envs.retriever import Retriever, build_index
    from lowvram_r1.envs.search import SearchSettings

    corpus = args.corpus or SearchSettings().corpus_path()
    started = time.monotonic()
    folder = build_index(corpus, args.index_dir, progress=True)
    retriever = Retriever.open(corpus, folder)
    print(f"BM25 index of {retriever.size} passages from {corpus}: {folder} ({time.monotonic() - started:.1f} s)")
    return 0
