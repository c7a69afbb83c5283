"""What the search-augmented tasks share: their rows (the invented world offline; FlashRAG-layout question files or
the hub otherwise), the search settings each row carries, and reference traces for cold-start SFT.

Rows: ``question``, ``golden_answers: list[str]``, ``gold_titles: list[str]`` (the passages that hold the answer;
empty for real benchmarks without them), ``queries`` / ``notes`` (a correct trace's searches and reasoning;
procedural rows only), ``hops`` and ``search`` (the row's :class:`~lowvram_r1.envs.search.SearchSettings` as JSON:
the rollout and the rewards read the environment from it).

Sources, in order: ``--data-path`` (a jsonl with ``question`` and ``golden_answers`` / ``answers`` / ``answer``,
FlashRAG's layout) with ``corpus`` the passage file to search; ``source: hub`` (FlashRAG's NQ / HotpotQA); or the
invented world (default, offline), whose corpus is written to the cache.
"""

from __future__ import annotations

import functools
import random
import re
from typing import Any

from lowvram_r1.envs.corpus import make_world, split_questions
from lowvram_r1.envs.search import SearchEnvironment, SearchSettings
from lowvram_r1.rewards.parsing import completion_text
from lowvram_r1.rewards.search import em_score
from lowvram_r1.rewards.trace import parse_trace
from lowvram_r1.tasks.base import Split, TaskDataError, local_split, read_hub_rows, take

TRACE_FACTS = ("asked", "any", "half")  # the values of the task option trace_fact
SEARCH_OPTIONS: dict[str, Any] = {
    "source": "procedural",  # or "hub" (FlashRAG_datasets hub_config questions; needs corpus)
    "hub_id": "RUC-NLPIR/FlashRAG_datasets",
    "hub_config": "nq",
    "corpus": "",  # passage jsonl ({id, title, text}); "" = the invented world's corpus
    "index_dir": "",
    "top_k": 3,
    "max_turns": 4,
    "max_passage_tokens": 64,
    "world_seed": 0,
    "world_people": 400,
    "hops": "all",  # "1", "2" or "all": which procedural questions
    "test_size": 200,
    "validation_size": 0,  # questions after the held-out ones kept out of training (split "validation")
    # The tiny model's cold-start traces of one-hop questions: "asked" states the fact the question asks for; "any"
    # a fact of the gold passage drawn at random (a person's page has two), so the cold start teaches searching and
    # copying a fact out of the passage, not which one: that is left for GRPO's exact-match reward to teach; "half"
    # the asked fact in half the traces and a random one in the others (the asked one in 3 of 4 on a person's page).
    "trace_fact": "asked",
}
# The built-in tiny model's variant: fewer, shorter passages so a trace fits its 512-token context.
TINY_SEARCH_OPTIONS: dict[str, Any] = {
    "top_k": 2,
    "max_passage_tokens": 20,
    "max_turns": 3,
    "world_people": 200,
    "test_size": 100,
}
# ...and its cold start: copying a name from the question into the query, then the answer out of a passage, is an
# induction a 1M-parameter model has not learnt after 290 SFT steps (2 epochs of 4600 one-hop traces: it writes the
# format, 87.5%, with invented names of its own); the default budget buys ~140 steps of two-hop traces.
TINY_SEARCH_SIZES: dict[str, Any] = {"sft_token_budget": 8_000_000, "sft_epochs": 8.0}


def settings(options: dict[str, Any], slot: str = "information") -> SearchSettings:
    """The search settings a task's resolved options name (validated: ``ValueError`` saying what to change)."""
    return SearchSettings.from_options({**options, "slot": slot})


def _question_row(raw: dict[str, Any]) -> dict[str, Any]:
    golds = raw.get("golden_answers", raw.get("answers", raw.get("answer")))
    if golds is None or "question" not in raw:
        raise TaskDataError("search rows need question and golden_answers (or answers / answer)")
    golds = [golds] if isinstance(golds, str) else [str(g) for g in golds]
    titles = raw.get("gold_titles") or []
    return {
        "question": str(raw["question"]),
        "golden_answers": golds,
        "gold_titles": [str(t) for t in titles],
        "queries": [],
        "notes": [],
        "hops": int(raw.get("hops") or 0),
    }


def search_rows(split: Split, slot: str = "information") -> list[dict[str, Any]]:
    """The rows of a search task (see the module docstring); each carries the ``search`` settings column."""
    options = dict(split.options)
    env = settings(options, slot)
    if split.data_path or options["source"] == "hub":
        if not env.corpus:
            raise TaskDataError(
                "questions from a file or the hub need a passage corpus to search: set the task "
                "option corpus to a jsonl of {id, title, text} rows (lowvram-r1 index --corpus FILE)"
            )
        if split.data_path:
            source = local_split(split)
        else:
            source = read_hub_rows(
                options["hub_id"], options["hub_config"], "test" if split.split == "test" else "train"
            )
        raw = [_question_row(r) for r in source]
    else:
        if env.corpus:
            raise TaskDataError(
                "the invented world's questions are answered by its own corpus: leave corpus empty, "
                "or pass the questions for your corpus with --data-path"
            )
        if options["hops"] not in ("1", "2", "all"):
            raise TaskDataError(f"option hops must be 1, 2 or all, got {options['hops']!r}")
        if options["trace_fact"] not in TRACE_FACTS:
            raise TaskDataError(f"option trace_fact must be asked, any or half, got {options['trace_fact']!r}")
        world = make_world(env.world_seed, env.world_people)
        raw = split_questions(
            world, split.split, int(options["test_size"]), str(options["hops"]), int(options["validation_size"])
        )
        if options["trace_fact"] != "asked":
            pages = {doc["title"]: doc["text"] for doc in world.documents}
            share = 1.0 if options["trace_fact"] == "any" else 0.5
            raw = [any_fact(row, pages[row["gold_titles"][0]], share) if row["hops"] == 1 else row for row in raw]
    blob = env.to_json()
    return take([{**row, "search": blob} for row in raw], split.size)


def any_fact(row: dict[str, Any], page: str, share: float = 1.0) -> dict[str, Any]:
    """A one-hop row whose cold-start trace states a fact of its gold ``page`` drawn at random (seeded by the
    question) for a ``share`` of the rows (the others keep the asked fact), and answers with that fact's last word
    (the world's entities are one word): right when the draw is the fact asked for. Its ``golden_answers`` (what
    every reward and check reads) stay the question's."""
    draw = random.Random(row["question"])
    if share < 1.0 and draw.random() >= share:  # "any" (share 1) draws as it always did
        return row
    sentences = [s.strip() for s in re.findall(r"[^.]+\.", page)]
    fact = draw.choice(sentences)
    return {**row, "notes": [fact], "trace_answer": fact.rstrip(".").split()[-1]}


@functools.lru_cache(maxsize=16)
def environment(blob: str) -> SearchEnvironment:
    """The environment a row's ``search`` column describes (one per settings, per process)."""
    return SearchEnvironment(SearchSettings.from_json(blob))


def reference_trace(row: dict[str, Any], style: str = "search_r1") -> str:
    """A correct multi-turn trace for a procedural row, with the passages the retriever really returns (so
    cold-start SFT teaches the format the rollout produces). ``style``: search_r1 or research."""
    env = environment(row["search"])
    queries, notes = list(row["queries"]), list(row["notes"])
    blocks = env.observe_many(queries) if queries else []
    answer = row.get("trace_answer") or row["golden_answers"][0]
    if style == "research":
        text = "<think>"
        for query, block, note in zip(queries, blocks, notes, strict=True):
            text += f" I need to search for {query}. <search> {query} </search>{block}{note}"
        return f"{text} </think>\n<answer>\n{answer}\n</answer>"
    text = ""
    lead = "<think> "
    for query, block, note in zip(queries, blocks, notes, strict=True):
        text += f"{lead}I need to search for {query}. </think>\n<search> {query} </search>{block}"
        lead = f"<think> {note} "
    # The answer inline, as the prompt's example writes it: " Dravonne" is then the same tokens as in the passage (a
    # line of its own would start with another token, "D" for " D"), so the tiny model learns one copy, not two.
    return f"{text}{lead.rstrip()} </think>\n<answer> {answer} </answer>"


def exact_check(completion: Any, row: dict) -> bool:
    """The final answer, in the model's own text, matches a gold answer after normalisation."""
    return em_score(parse_trace(completion_text(completion)), row.get("golden_answers")) == 1.0


SEARCH_R1_PROMPT = (
    "Answer the given question. You must reason inside <think> and </think> first every time you get new "
    "information. If you lack some knowledge, call a search engine by <search> query </search>: it returns the top "
    "results between <{slot}> and </{slot}>. You can search as many times as you want. When no further knowledge is "
    "needed, give the answer inside <answer> and </answer>, without explanations. For example, <answer> Beijing "
    "</answer>."
)
