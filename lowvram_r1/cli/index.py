"""``lowvram-r1 index``: build the BM25 index of a passage corpus for the search tasks (cached).
"""

from __future__ import annotations

def cmd_index(args: argparse.Namespace) -> int:
    import time

    from lowvram_r1.envs.retriever import Retriever, build_index
    from lowvram_r1.envs.search import SearchSettings

    corpus = args.corpus or SearchSettings().corpus_path()
    started = time.monotonic()
    folder = build_index(corpus, args.index_dir, progress=True)
    retriever = Retriever.open(corpus, folder)
    print(f"BM25 index of {retriever.size} passages from {corpus}: {folder} ({time.monotonic() - started:.1f} s)")
    return 0
