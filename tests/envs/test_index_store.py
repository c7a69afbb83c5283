"""The BM25 index never deletes what it did not write, never stores a corpus it would shift, and is never used for
another corpus (issue 27, items 1 and 12). The CLI runs in-process (``main([...])``), like a user's command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lowvram_r1.cli import main
from lowvram_r1.envs.index_store import MARKER
from lowvram_r1.envs.retriever import Retriever, build_index
from lowvram_r1.envs.search import SearchEnvironment, SearchSettings


def write_corpus(path: Path, pages: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"id": key, "title": key, "text": text}) + "\n" for key, text in pages.items()))
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "a.jsonl", {"a1": "quillmark founded brevon", "a2": "dravonne is a city"})


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_index_dir_holding_foreign_files_is_refused_untouched(tmp_path: Path, corpus: Path, capsys) -> None:
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("keep me")
    (folder / "sub" / "data.bin").write_bytes(b"\x00" * 10)
    before = tree(folder)
    assert main(["index", "--corpus", str(corpus), "--index-dir", str(folder)]) == 2
    assert "not a lowvram-r1 index" in capsys.readouterr().err
    assert tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "mine"]  # no scratch folder left behind


def test_index_dir_dot_leaves_the_working_folder_alone(tmp_path: Path, corpus: Path, capsys) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text("print('mine')")
    before = tree(work)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        assert main(["index", "--corpus", str(corpus), "--index-dir", "."]) == 2
    finally:
        os.chdir(cwd)
    assert tree(work) == before
    assert "new or empty folder" in capsys.readouterr().err


def test_a_look_alike_marker_does_not_make_a_folder_ours(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / MARKER).write_text(json.dumps({"corpus": str(corpus), "passages": 2}))
    (folder / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="not a lowvram-r1 index"):
        build_index(corpus, folder)
    assert (folder / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("kind", ["file", "link"])
def test_a_file_or_a_link_as_index_dir_is_refused(tmp_path: Path, corpus: Path, kind: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("data")
    else:
        target.symlink_to(elsewhere)
    with pytest.raises(ValueError, match="symbolic link" if kind == "link" else "not a folder"):
        build_index(corpus, target)
    assert os.listdir(elsewhere) == [] and (kind == "link" or target.read_text() == "data")


def test_the_task_option_index_dir_goes_through_the_same_check(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    env = SearchEnvironment(SearchSettings(corpus=str(corpus), index_dir=str(folder)))
    with pytest.raises(ValueError, match="not a lowvram-r1 index"):
        env.observe("quillmark")
    assert os.listdir(folder) == ["keep.txt"]


def test_an_empty_folder_is_filled_and_an_old_index_of_ours_is_replaced(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "idx"
    folder.mkdir()
    assert build_index(corpus, folder) == folder
    assert Retriever.open(corpus, folder).search("quillmark", 1)[0].id == "a1"
    other = write_corpus(tmp_path / "b.jsonl", {"b1": "zorvath mountain range", "b2": "kelvaria river"})
    assert build_index(other, folder) == folder  # another corpus: rebuilt in place, never used as it is
    assert Retriever.open(other, folder).search("zorvath", 1)[0].id == "b1"
    assert Retriever.open(other, folder).search("quillmark", 1) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl", "idx"]


def test_an_index_is_keyed_on_its_corpus_bytes(tmp_path: Path, corpus: Path) -> None:
    folder = build_index(corpus, tmp_path / "idx")
    stamp = (folder / MARKER).stat().st_mtime_ns
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(corpus.read_bytes())
    assert build_index(copy, folder) == folder and (folder / MARKER).stat().st_mtime_ns == stamp  # same bytes: reused
    size = corpus.stat().st_size
    corpus.write_text(corpus.read_text().replace("quillmark", "zephyrine"))  # same size, other text
    assert corpus.stat().st_size == size
    build_index(corpus, folder)
    assert Retriever.open(corpus, folder).search("zephyrine", 1)[0].id == "a1"


def test_a_row_bm25s_would_skip_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        json.dumps({"id": "1", "title": "One", "text": "first page"})
        + "\n"
        + json.dumps({"id": "2", "title": "Two", "text": "bad \ud800 page"})
        + "\n"
        + json.dumps({"id": "3", "title": "Three", "text": "third page zorvath"})
        + "\n"
    )
    with pytest.raises(ValueError, match=r"line 2: field text .*lone surrogate"):
        build_index(path, tmp_path / "idx")
    assert not (tmp_path / "idx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl"]


def test_a_deeply_nested_corpus_row_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "ok"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        build_index(path, tmp_path / "idx")


def test_an_index_of_the_previous_version_is_ours_and_rebuilt(tmp_path: Path, corpus: Path) -> None:
    folder = build_index(corpus, tmp_path / "idx")
    (folder / MARKER).write_text(json.dumps({"corpus": str(corpus), "passages": 2}))  # what version 1 wrote
    assert build_index(corpus, folder) == folder
    assert json.loads((folder / MARKER).read_text())["format"] == "lowvram-r1 bm25 index"
