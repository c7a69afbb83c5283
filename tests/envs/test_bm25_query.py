"""The fast BM25 query path (lowvram_r1.envs.bm25_query) against bm25s's own ``retrieve``: the same scores for every
query, the same passages wherever bm25s's answer is determined (no tie at the cut), ties broken by corpus order;
the top-k selection against a plain sort; loading into memory or memory-mapped by the size rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowvram_r1.envs.bm25_query import FastBM25, fits_in_memory, index_footprint, load_index, top_k_scores
from lowvram_r1.envs.corpus import make_world
from lowvram_r1.envs.retriever import Retriever, _tokenize, build_index


@pytest.fixture(scope="module")
def world_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    world = make_world(3, 400)
    corpus = tmp_path_factory.mktemp("world") / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in world.documents))
    questions = [q["question"] for q in world.questions[:150]]
    extra = ["", "the of a", "zzzq unknown words", "born", "company city", world.documents[5]["title"]]
    return build_index(corpus), questions + [q["queries"][0] for q in world.questions[:30]] + extra


def bm25s_answer(model: object, query: str, k: int) -> tuple[list[int], list[float], np.ndarray]:
    """bm25s's own retrieve (what Retriever called before): passage numbers, scores, and the dense scores."""
    terms = _tokenize([query])[0][:32]
    ids = model.get_tokens_ids(terms)  # type: ignore[attr-defined]
    if not ids:
        return [], [], np.zeros(0)
    docs, scores = model.retrieve([terms], k=k, show_progress=False, n_threads=0)  # type: ignore[attr-defined]
    number = {d["id"]: i for i, d in enumerate(model.corpus)}  # type: ignore[attr-defined]
    kept = [(number[d["id"]], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
    dense = model.get_scores_from_ids(ids)  # type: ignore[attr-defined]
    return [i for i, _ in kept], [s for _, s in kept], dense


@pytest.mark.parametrize("k", [1, 3, 10])
def test_the_fast_path_returns_what_bm25s_retrieve_returns(world_index: tuple[Path, list[str]], k: int) -> None:
    folder, queries = world_index
    retriever = Retriever(folder)
    number = {d["id"]: i for i, d in enumerate(retriever.model.corpus)}
    determined = 0  # passages compared one to one with bm25s's
    for query, found in zip(queries, retriever.search_many(queries, k), strict=True):
        old_docs, old_scores, dense = bm25s_answer(retriever.model, query, k)
        assert [p.score for p in found] == old_scores, query  # identical float32 scores, in order
        new_docs = [number[p.id] for p in found]
        if not old_docs:
            assert new_docs == []
            continue
        for rank, (old, score) in enumerate(zip(old_docs, old_scores, strict=True)):
            if np.count_nonzero(dense == score) == 1:  # no other passage has this score: bm25s's pick is determined
                determined += 1
                assert new_docs[rank] == old, query
        # ours, always: best score first, equal scores in corpus order, nothing better left out
        best = sorted(np.flatnonzero(dense >= old_scores[-1]).tolist(), key=lambda i: (-dense[i], i))
        assert new_docs == best[: len(found)]
    assert determined >= len(queries) // 2  # the exact comparison above covered many passages


def test_equal_scores_come_back_in_corpus_order(tmp_path: Path) -> None:
    corpus = tmp_path / "same.jsonl"
    rows = [{"id": f"d{i}", "title": "Twin page", "text": "Quorvath lives here."} for i in range(300)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    found = Retriever(build_index(corpus)).search_many(["quorvath"] * 3, 5)
    assert [[p.id for p in hits] for hits in found] == [["d0", "d1", "d2", "d3", "d4"]] * 3


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.0, -0.0, 1.5, 1.5, 2.25, 7.0, -3.0, 1e-30]), min_size=1, max_size=300),
    k=st.integers(1, 60),
    hint=st.lists(st.integers(0, 299), max_size=40),
)
def test_top_k_selection_is_a_sort_by_score_then_position(values: list[float], k: int, hint: list[int]) -> None:
    scores = np.asarray(values, dtype=np.float32)
    hint_array = np.unique(np.asarray([h for h in hint if h < len(values)], dtype=np.int64))
    expected = sorted(range(len(values)), key=lambda i: (-float(scores[i]), i))[:k]
    for given_hint in (None, hint_array):
        found, top = top_k_scores(scores, k, hint=given_hint)
        assert found.tolist() == expected  # -0.0 and 0.0 are equal scores too
        assert top.tolist() == [float(scores[i]) for i in expected]


def test_the_index_loads_into_memory_when_it_fits(world_index: tuple[Path, list[str]]) -> None:
    folder, queries = world_index
    size = index_footprint(folder)
    assert size > (folder / "corpus.jsonl").stat().st_size  # the corpus as Python objects, plus the arrays
    assert fits_in_memory(folder, 4 * size) and not fits_in_memory(folder, 4 * size - 1)
    assert not fits_in_memory(folder, None)  # unknown available memory: memory-map
    mapped, in_memory = load_index(folder, in_memory=False)
    assert not in_memory and isinstance(mapped.scores["data"], np.memmap)
    loaded, in_memory = load_index(folder, in_memory=True)
    assert in_memory and not isinstance(loaded.scores["data"], np.memmap) and isinstance(loaded.corpus, list)
    assert Retriever(folder).in_memory  # a 400-person world fits in any machine that runs the tests
    terms = _tokenize(queries)
    assert FastBM25(mapped).top_k_many(terms, 3) == FastBM25(loaded).top_k_many(terms, 3)
