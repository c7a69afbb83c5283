"""The search environment: settings (validated before anything loads) and the observation block a ``<search>``
turn gets back — the top-k BM25 passages, each cut to ``max_passage_tokens`` words, inside the task's slot tag.

    settings = SearchSettings.from_options({"corpus": "", "top_k": 3, "max_turns": 4})   # "": the invented world
    env = SearchEnvironment(settings)
    env.observe("Vesna Torrik")   # '\\n<information>Doc 1 (Title: Vesna Torrik) Vesna Torrik was born in ...
                                  #  </information>\\n'

Passages are sanitised (angle brackets become parentheses), so no retrieved text can open or close a tag. With
``retrieval=False`` every search comes back empty: the same model with retrieval switched off.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lowvram_r1.envs.corpus import world_corpus_file
from lowvram_r1.rewards.trace import OBSERVATION_TAGS

# The rollout stops the model at these: a search to answer, an answer that ends the episode, or an observation
# tag the model opened itself (forging: the episode ends there, see lowvram_r1.rewards.trace).
STOP_STRINGS = ("</search>", "</answer>", *(f"<{tag}>" for tag in OBSERVATION_TAGS))
# How many tokens a passage word costs at most, on average, for the planner's sequence lengths (BPE tokenizers
# split rare words; invented names take ~3 tokens in the tiny model's 512-token vocabulary).
TOKENS_PER_WORD = 2


@dataclass(frozen=True)
class SearchSettings:
    """Where passages come from and how much of them a rollout gets."""

    corpus: str = ""  # a {id, title, text} jsonl; "" = the invented world's corpus (offline)
    index_dir: str = ""  # "" = the cache, keyed by the corpus file
    top_k: int = 3
    max_turns: int = 4
    max_passage_tokens: int = 64  # words per passage (whitespace tokens)
    slot: str = "information"  # the tag observations come in: information (Search-R1) or result (ReSearch)
    world_seed: int = 0
    world_people: int = 400

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.top_k <= 50, f"top_k must be 1..50, got {self.top_k}"),
            (0 <= self.max_turns <= 32, f"max_turns must be 0..32, got {self.max_turns}"),
            (
                4 <= self.max_passage_tokens <= 4096,
                f"max_passage_tokens must be 4..4096, got {self.max_passage_tokens}",
            ),
            (self.slot in OBSERVATION_TAGS, f"slot must be one of {', '.join(OBSERVATION_TAGS)}, got {self.slot!r}"),
            (20 <= self.world_people <= 100_000, f"world_people must be 20..100000, got {self.world_people}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"search settings: {message}")
        if self.corpus and not Path(self.corpus).is_file():
            raise ValueError(
                f"search settings: corpus file {self.corpus} does not exist (a jsonl of "
                "{id, title, text} rows; leave corpus empty for the built-in invented world)"
            )

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SearchSettings:
        """The settings named in a task's options (other keys ignored); ``ValueError`` on a bad value."""
        fields = cls.__dataclass_fields__
        values: dict[str, Any] = {}
        for name, spec in fields.items():
            if name not in options:
                continue
            kind = str if spec.type == "str" else int
            try:
                values[name] = kind(options[name]) if options[name] is not None else spec.default
            except (TypeError, ValueError, OverflowError) as error:  # OverflowError: int(inf)
                raise ValueError(f"search settings: {name} must be {kind.__name__}, got {options[name]!r}") from error
        return cls(**values)

    def corpus_path(self) -> Path:
        return Path(self.corpus) if self.corpus else world_corpus_file(self.world_seed, self.world_people)

    def observation_tokens(self) -> int:
        """Upper bound on the tokens the environment inserts into one completion (for memory planning)."""
        per_block = self.top_k * (self.max_passage_tokens + 12) * TOKENS_PER_WORD + 8
        return self.max_turns * per_block

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, blob: str) -> SearchSettings:
        return cls(**json.loads(blob))


def sanitize(text: str) -> str:
    return " ".join(text.replace("<", "(").replace(">", ")").split())


def cut_words(text: str, words: int) -> str:
    parts = text.split(maxsplit=words)
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


class SearchEnvironment:
    """Answers ``<search>`` turns with observation blocks (see the module docstring)."""

    def __init__(self, settings: SearchSettings, retrieval: bool = True) -> None:
        self.settings = settings
        self.retrieval = retrieval
        self._retriever: Any = None

    @property
    def retriever(self) -> Any:
        if self._retriever is None:
            from lowvram_r1.envs.retriever import Retriever

            self._retriever = Retriever.open(self.settings.corpus_path(), self.settings.index_dir or None)
        return self._retriever

    def observe(self, query: str) -> str:
        return self.observe_many([query])[0]

    def observe_many(self, queries: list[str]) -> list[str]:
        """One observation block per query, each starting and ending with a newline."""
        s = self.settings
        found = self.retriever.search_many(queries, s.top_k) if self.retrieval else [[] for _ in queries]
        blocks = []
        for passages in found:
            docs = [
                f"Doc {i} (Title: {sanitize(p.title)[:200]}) {cut_words(sanitize(p.text), s.max_passage_tokens)}"
                for i, p in enumerate(passages, 1)
            ]
            blocks.append(f"\n<{s.slot}>" + ("\n".join(docs) or "No results.") + f"</{s.slot}>\n")
        return blocks
