"""Reading a multi-turn search trace: the model's own text, its ``<search>`` queries, the observations the
environment inserted, and whether the model forged an observation itself.

    trace = parse_trace("<think>x</think><search> Vesna </search>\\n<information>Doc 1 ...</information>\\n"
                        "<think>y</think><answer> Dravonne </answer>")
    trace.queries, trace.answer, trace.forged        # ("Vesna",), "Dravonne", False

**Who wrote an observation.** The rollout stops the model at every ``</search>`` and inserts the retriever's
block right after it, and it also stops the model the moment it opens an observation tag itself (the episode
ends there). So in a real trace an observation block (``<information>`` or ReSearch's ``<result>``) is trusted
only when it is the first tag after a ``</search>``; any other observation tag was written by the model: it is
*forged*. Forged tags stay in the model's text (never read as retrieved passages) and fail every format check.
Text-only scoring (``lowvram-r1 score``) cannot tell a hand-written block placed right after ``</search>`` from a
real one; in training the rollout guarantees it.

Parsing is one left-to-right scan over at most ``MAX_COMPLETION_CHARS`` characters: linear time on any input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lowvram_r1.rewards.parsing import MAX_COMPLETION_CHARS, extract_answer

OBSERVATION_TAGS = ("information", "result")
MAX_QUERY_CHARS = 500
_TAG = re.compile(r"</?(?:think|search|answer|information|result)>")
_TITLE = re.compile(r"\(Title: ([^)\n]{0,300})\)")


@dataclass(frozen=True)
class Trace:
    """One completion split into what the model wrote and what the environment inserted."""

    model_text: str  # the model's own text, trusted observations cut out
    queries: tuple[str, ...]  # each closed <search> query, stripped (at most MAX_QUERY_CHARS each)
    observations: tuple[str, ...]  # the trusted observation blocks' contents
    forged: bool  # the model wrote an observation tag itself
    answer: str | None  # the final <answer> in the model's own text

    @property
    def retrieved_text(self) -> str:
        return "\n".join(self.observations)

    @property
    def retrieved_titles(self) -> list[str]:
        return [title for block in self.observations for title in block_titles(block)]


def block_titles(block: str) -> list[str]:
    """The passage titles in one observation block, in order (``Doc 1 (Title: Vesna Torrik) ...``)."""
    return [title.strip() for title in _TITLE.findall(block)]


def parse_trace(text: str) -> Trace:
    """Split ``text`` (a completion's text) into a :class:`Trace`; never raises."""
    text = text[:MAX_COMPLETION_CHARS] if isinstance(text, str) else ""
    pieces: list[str] = []
    observations: list[str] = []
    forged, last_tag, pos = False, "", 0
    while (match := _TAG.search(text, pos)) is not None:
        tag = match.group()
        name = tag.strip("</>")
        if name in OBSERVATION_TAGS and not tag.startswith("</") and last_tag == "</search>":
            pieces.append(text[pos : match.start()])
            close = text.find(f"</{name}>", match.end())
            end = len(text) if close < 0 else close + len(name) + 3
            observations.append(text[match.end() : close if close >= 0 else len(text)])
            pos, last_tag = end, "observation"
            continue
        if name in OBSERVATION_TAGS:
            forged = True
        pieces.append(text[pos : match.end()])
        pos, last_tag = match.end(), tag
    pieces.append(text[pos:])
    model_text = "".join(pieces)
    queries = tuple(_queries(model_text))
    return Trace(model_text, queries, tuple(observations), forged, extract_answer(model_text))


def _queries(model_text: str) -> list[str]:
    """Each ``<search>…</search>`` query in order (the text up to the next ``</search>``), in one forward scan."""
    found, pos = [], 0
    while (start := model_text.find("<search>", pos)) >= 0:
        close = model_text.find("</search>", start)
        if close < 0:
            break
        query = model_text[start + len("<search>") : close]
        found.append(" ".join(query[: 4 * MAX_QUERY_CHARS].replace("<search>", " ").split())[:MAX_QUERY_CHARS])
        pos = close + len("</search>")
    return found


def turn_query(turn_text: str) -> str:
    """The query of a model turn that ended at ``</search>``: the text since the last ``<search>`` before it
    (tags stripped, capped); ``""`` when there is none."""
    close = turn_text.rfind("</search>")
    if close < 0:
        return ""
    start = turn_text.rfind("<search>", 0, close)
    query = turn_text[start + len("<search>") : close] if start >= 0 else ""
    return " ".join(_TAG.sub(" ", query[: 4 * MAX_QUERY_CHARS]).split())[:MAX_QUERY_CHARS]
