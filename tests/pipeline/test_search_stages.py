"""Search tasks outside ``train``: ``eval`` and ``sample`` search as training does, on a FlashRAG-layout question
file and corpus, and ``--no-retrieval`` switches the retriever off; ``pipeline`` checks its chain before anything
runs and chains R1-Searcher's two stages.

The eval tests drive the real CLI, model loading, tokenizer, BM25 index and episode loop; only the policy is
scripted (a reader that searches the name in the question, then answers with the city the passage names), so the
verdicts say what retrieval brings, not what a 1M-parameter model happens to learn."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lowvram_r1 import config
from lowvram_r1.cli import main
from lowvram_r1.runs import RunDir

PEOPLE = [("Orla Venn", "Quillmoor"), ("Tavi Respin", "Lorthwick"), ("Edda Kromm", "Saltervane")]
PEOPLE += [("Ferro Lask", "Ombrelle"), ("Wenna Tull", "Harrowgate"), ("Ilse Marrow", "Pennithorne")]


def flashrag_files(folder: Path) -> tuple[Path, Path]:
    """A question file and a passage corpus in FlashRAG's layouts (``contents`` = '"Title"\\ntext')."""
    questions = folder / "nq_like.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"id": f"test_{i}", "question": f"Where does {name} live?", "golden_answers": [city]}) + "\n"
            for i, (name, city) in enumerate(PEOPLE)
        )
    )
    corpus = folder / "wiki_like.jsonl"
    passages = [f'"{name}"\n{name} lives in {city}. {name} collects stamps.' for name, city in PEOPLE]
    passages += [f'"{city}"\n{city} is a town by the sea.' for _, city in PEOPLE]
    corpus.write_text("".join(json.dumps({"id": str(i), "contents": c}) + "\n" for i, c in enumerate(passages)))
    return questions, corpus


def reader_policy(model: Any, tokenizer: Any, temperature: float, *args: Any, **kwargs: Any) -> Any:
    """Stands in for ``hf_sampler``: search the question's name, then answer what the passages say."""

    def sample(inputs: list[list[int]], max_tokens: int) -> tuple[list[list[int]], None]:
        out = []
        for ids in inputs:
            text = tokenizer.decode(ids, skip_special_tokens=True)
            name = re.search(r"Where does (.+?) live\?", text).group(1)
            after = text.split("live?", 1)[1]
            if "</information>" not in after:
                turn = f"<think> I need to find {name}. </think>\n<search> {name} </search>"
            else:
                found = re.search(rf"{name} lives in (\w+)", after)
                turn = f"<think> read it </think>\n<answer> {found.group(1) if found else 'nowhere'} </answer>"
            out.append(tokenizer(turn, add_special_tokens=False)["input_ids"])
        return out, None

    return sample


@pytest.fixture
def search_recipe(tmp_path: Path) -> tuple[Path, Path]:
    questions, corpus = flashrag_files(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    options = {"corpus": str(corpus), "test_size": 4, "top_k": 2, "max_turns": 2}
    recipe.write_text(f"task:\n  name: search_r1\n  options: {json.dumps(options)}\n")
    return recipe, questions


def test_eval_searches_the_corpus_and_no_retrieval_switches_it_off(
    search_recipe: tuple[Path, Path], small_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lowvram_r1.rollout.multiturn as multiturn

    recipe, questions = search_recipe
    monkeypatch.setattr(multiturn, "hf_sampler", reader_policy)
    corpus = json.loads(recipe.read_text().split("options: ", 1)[1])["corpus"]
    assert main(["index", "--corpus", corpus]) == 0
    common = ["eval", "--config", str(recipe), "--model", str(small_model), "--data-path", str(questions)]
    assert main([*common, "--limit", "4", "--out", str(tmp_path / "on.json")]) == 0
    assert main([*common, "--limit", "4", "--out", str(tmp_path / "off.json"), "--no-retrieval"]) == 0
    on, off = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("on", "off"))
    assert on["retrieval"] is True and off["retrieval"] is False
    assert on["n"] == off["n"] == 4  # the file's first test_size questions are the held-out split
    assert on["accuracy"] == 1.0 and off["accuracy"] == 0.0
    first = on["examples"][0]["completion"]
    assert "<information>" in first and "Doc 1 (Title: Orla Venn) Orla Venn lives in Quillmoor" in first
    assert "No results." in off["examples"][0]["completion"]


def test_no_retrieval_on_a_single_turn_task_is_refused_before_loading(capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "--task", "countdown", "--model", "no/such-model", "--no-retrieval"]) == 2
    assert "does not search" in capsys.readouterr().err


def test_sampling_a_search_task_keeps_searched_completions(
    search_recipe: tuple[Path, Path], small_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lowvram_r1.rollout.multiturn as multiturn

    recipe, questions = search_recipe
    monkeypatch.setattr(multiturn, "hf_sampler", reader_policy)
    out = tmp_path / "samples.jsonl"
    args = ["sample", "--config", str(recipe), "--model", str(small_model), "--data-path", str(questions)]
    assert main([*args, "--n", "1", "--limit", "2", "--out", str(out)]) == 0
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(kept) == 2  # the train split: the rows after the first test_size
    assert all("<information>" in k["completion"][0]["content"] for k in kept)


def test_pipeline_stages_are_checked_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lowvram_r1.pipeline.chain import R1_STAGES, Stage, plan_stages

    countdown = config.load(None, {"task": "countdown"})
    searcher = config.load(None, {"task": "r1_searcher"})
    traces = tmp_path / "traces.jsonl"
    traces.write_text("")
    assert [s.kind for s in plan_stages(countdown, None, str(traces))] == list(R1_STAGES)
    assert plan_stages(searcher, None, None) == [Stage("grpo", (("stage", 1),)), Stage("grpo", (("stage", 2),))]
    assert [s.kind for s in plan_stages(countdown, ["grpo", "sample", "sft", "grpo"], None)] == [
        "grpo",
        "sample",
        "sft",
        "grpo",
    ]  # an SFT stage after sampling trains on the samples: no --sft-data needed
    refused = {
        ("bogus",): "the stages are sft, grpo, sample",
        ("grpo:stage",): "key=value",
        ("grpo:nope=1",): "has no option nope",
        ("sft", "grpo"): "needs --sft-data",
    }
    for stages, message in refused.items():
        with pytest.raises(ValueError, match=message):
            plan_stages(searcher, list(stages), None)
    out = tmp_path / "chain"
    code = main(["pipeline", "--task", "countdown", "--model", "tiny", "--output-dir", str(out)])
    assert code == 2 and "needs --sft-data" in capsys.readouterr().err
    assert not out.exists()  # refused before any stage made a folder
    code = main(
        ["pipeline", "--task", "countdown", "--sft-data", str(tmp_path / "none.jsonl"), "--output-dir", str(out)]
    )
    assert code == 2 and "no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_the_pipeline_chains_r1_searchers_two_stages(small_model: Path, tmp_path: Path) -> None:
    from lowvram_r1.pipeline.chain import run_pipeline
    from lowvram_r1.runs.reader import read_jsonl

    recipe = tmp_path / "recipe.yaml"
    options = {"test_size": 4, "world_people": 60, "top_k": 2, "max_passage_tokens": 12, "max_turns": 2}
    recipe.write_text(f"task:\n  options: {json.dumps(options)}\n")
    overrides = {"task": "r1_searcher", "model": str(small_model), "max_steps": 1, "eval_size": 0}
    overrides.update({"num_generations": 4, "batch-size": 4, "max_prompt_length": 400, "max_completion_length": 24})
    cfg = config.load(recipe, {**overrides, "system_prompt": "", "save_steps": 100})
    summaries = run_pipeline(cfg, None, tmp_path / "chain", progress=False)
    assert list(summaries) == ["1-grpo", "2-grpo"]
    first, second = (RunDir(tmp_path / "chain" / name) for name in summaries)
    assert config.load(first.config).task.options["stage"] == 1
    assert config.load(second.config).task.options["stage"] == 2
    assert config.load(second.config).model.name == str(first.path / "merged-16bit")  # stage 2 starts from stage 1
    for run, active, idle in ((first, "retrieval_reward", "answer_reward"), (second, "answer_reward", "format_reward")):
        assert run.status()["state"] == "finished"
        [step] = [r for r in read_jsonl(run.metrics)[0] if r["kind"] == "train"]
        assert isinstance(step[f"rewards/{active}/mean"], float)  # this stage's reward is scored
        assert step.get(f"rewards/{idle}/mean") is None  # the other stage's answers None: TRL's NaN, recorded null
