"""BM25 retrieval speed on CPU (queries/s) for the search tasks, on the invented world at a chosen size.

python bench/retrieval.py --people 20000 --queries 2000     # prints index build time and queries/s
"""

from __future__ import annotations

import argparse
import sys
import time

from lowvram_r1.envs.corpus import make_world, world_corpus_file
from lowvram_r1.envs.retriever import Retriever, build_index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)
    corpus = world_corpus_file(0, args.people)
    started = time.monotonic()
    build_index(corpus)
    retriever = Retriever.open(corpus)
    built = time.monotonic() - started
    questions = [q["question"] for q in make_world(0, args.people).questions[: args.queries]]
    started = time.monotonic()
    for start in range(0, len(questions), 64):
        retriever.search_many(questions[start : start + 64], args.top_k)
    seconds = time.monotonic() - started
    sys.stdout.write(
        f"{retriever.size} passages: index ready in {built:.1f} s; {len(questions)} queries "
        f"(top-{args.top_k}, batches of 64) at {len(questions) / seconds:.0f} queries/s\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
