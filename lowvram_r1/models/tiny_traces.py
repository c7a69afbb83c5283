"""Cold-start SFT rows for the tiny model on a multi-turn task, tokenized as the rollout produces them: the prompt as
generation renders it, then the trace piece by piece, each observation block (``\\n<information>…</information>\\n``
or ReSearch's ``<result>``) tokenized on its own, as the environment inserts it, and masked out of the loss.

Search-R1 masks retrieved tokens in RL; doing the same at SFT time keeps the cold start from spending a 1M-parameter
model on predicting passages about invented people it cannot know, and teaches what the policy writes: the query,
the reasoning and the answer. TRL's SFTTrainer reads the ``completion_mask`` column of a tokenized dataset when
``completion_only_loss`` is on (trl/trainer/sft_trainer.py, "Building labels").
"""

from __future__ import annotations

import re
from typing import Any

from lowvram_r1.models.prompts import prompt_text
from lowvram_r1.rewards.trace import OBSERVATION_TAGS

_BLOCK = re.compile(rf"\n<({'|'.join(OBSERVATION_TAGS)})>.*?</\1>\n", re.DOTALL)


def _completion_text(completion: Any) -> str:
    return completion if isinstance(completion, str) else "".join(m["content"] for m in completion)


def masked_trace_example(example: dict[str, Any], tokenizer: Any) -> dict[str, list[int]]:
    """``{"input_ids", "completion_mask"}`` for one prompt/completion row (mask 0: prompt and observations)."""
    ids = tokenizer(prompt_text(tokenizer, example["prompt"]), add_special_tokens=False)["input_ids"]
    mask = [0] * len(ids)
    text, position = _completion_text(example["completion"]), 0

    def add(piece: str, learned: int) -> None:
        if piece:
            piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
            ids.extend(piece_ids)
            mask.extend([learned] * len(piece_ids))

    for block in _BLOCK.finditer(text):
        add(text[position : block.start()], 1)
        add(block.group(0), 0)
        position = block.end()
    add(text[position:], 1)
    ids.append(tokenizer.eos_token_id)  # the model learns to stop after its answer
    mask.append(1)
    return {"input_ids": ids, "completion_mask": mask}


def masked_trace_examples(examples: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, list[int]]]:
    return [masked_trace_example(example, tokenizer) for example in examples]
