"""The search demo's GRPO phase (configs/search-demo.yaml's task settings: its world, top-k, passage length, turns,
rewards and weights) on scripted policies: the passages the retriever inserts are exactly the tokens TRL's loss mask
drops, and the exact-match reward reads the model's own answer after its last search — never an answer that sits in
a retrieved passage or in text written before a later search. And a rollout turn's searches reach the retriever as
one batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lowvram_r1 import config
from lowvram_r1.envs.search import SearchEnvironment
from lowvram_r1.rewards.trace import parse_trace
from lowvram_r1.rollout.multiturn import SearchRollout
from lowvram_r1.tasks import TASKS, Split
from lowvram_r1.tasks.base import PromptFormat
from lowvram_r1.tasks.search_common import settings
from tests.paths import ROOT

pytestmark = pytest.mark.slow
RECIPE = ROOT / "configs" / "search-demo.yaml"
WRONG = "Nowhere"


def demo() -> tuple[config.RunConfig, dict[str, Any]]:
    """The demo's run config (its tiny profile applied) and its task options, resolved as the engine does."""
    cfg = config.load(RECIPE, {"max_steps": 1, "batch-size": 4, "num_generations": 4, "logging_steps": 1})
    return cfg, TASKS[cfg.task.name].resolve_options(cfg.task.options)


def policies(row: dict[str, Any], other: dict[str, Any]) -> list[list[str]]:
    """Four scripted policies for one question, each a list of turns; ``{copy}`` is the gold answer when the
    passages the policy last received hold it (a policy that copies what it read), else "unknown"."""
    name, gold = row["queries"][0], row["golden_answers"][0]
    search = f"<think> find it </think>\n<search> {name} </search>"
    return [
        [search, "<think> found </think>\n<answer> {copy} </answer>"],  # copies the answer: EM 1
        [search, f"<think> found </think>\n<answer> {WRONG} </answer>"],  # the passage holds it, the answer not: 0
        [
            f"<think> maybe {gold} </think>\n<search> {name} </search>",
            f"<think> no </think>\n<answer> {WRONG} </answer>",
        ],
        [
            f"<think> first </think>\n<search> {other['queries'][0]} </search>",
            search,
            "<think> ok </think>\n<answer> {copy} </answer>",
        ],  # a wrong search, then the right one, then the copy: EM 1
    ]


class ScriptedDemo(SearchRollout):
    """Generation by the policies above: policy ``i`` writes the ``i``-th completion of the group. The rollout
    generates the still-running episodes each turn, in order; an episode ends when its policy answers."""

    def __init__(self, env: SearchEnvironment, turns: list[list[str]], tokenizer: Any, gold: str) -> None:
        super().__init__(env)
        self.turns, self.tokenizer, self.gold = turns, tokenizer, gold

    def _sampler(self, trainer: Any, temperature: float, sampling: bool = True) -> Any:
        running = list(range(len(self.turns)))
        written = [0] * len(self.turns)

        def sample(inputs: list[list[int]], max_tokens: int) -> tuple[list[list[int]], None]:
            assert len(inputs) == len(running)
            out = []
            for policy, ids in zip(list(running), inputs, strict=True):
                seen = parse_trace(self.tokenizer.decode(ids)).observations
                turn = self.turns[policy][written[policy]]
                written[policy] += 1
                text = turn.replace("{copy}", self.gold if seen and self.gold in seen[-1] else "unknown")
                out.append(self.tokenizer(text, add_special_tokens=False)["input_ids"])
                if "</answer>" in text:
                    running.remove(policy)
            return out, None

        return sample


def test_the_demo_masks_its_passages_and_scores_the_answer_after_the_last_search(
    small_model: Path, tmp_path: Path
) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    from lowvram_r1.backends.hf import lora_config
    from lowvram_r1.models.cpu_logprob import install

    install()
    cfg, options = demo()
    task = TASKS[cfg.task.name]
    env = SearchEnvironment(settings(options))
    rows = task.build_rows(Split("train", 40, 0, None, options), PromptFormat(system_prompt=cfg.task.system_prompt))
    found = [r for r in rows if r["golden_answers"][0] in env.observe(r["queries"][0])]
    row, other = (
        found[0],
        next(r for r in found[1:] if r["golden_answers"][0] not in env.observe(found[0]["queries"][0])),
    )
    tokenizer = AutoTokenizer.from_pretrained(small_model)
    turns = policies(row, other)
    rollout = ScriptedDemo(env, turns, tokenizer, row["golden_answers"][0])
    args = config.to_grpo_config(cfg, tmp_path, use_cpu=True, reward_weights=list(task.reward_weights))
    args.save_strategy = "no"
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(small_model),
        reward_funcs=list(task.reward_funcs),
        args=args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_list([row] * 4),
        peft_config=lora_config(cfg),
        rollout_func=rollout,
    )
    captured: dict[str, Any] = {}
    plain = trainer._calculate_rewards

    def spy(*a: Any, **k: Any) -> Any:
        captured["rewards"] = plain(*a, **k)
        return captured["rewards"]

    trainer._calculate_rewards = spy
    inputs = trainer._generate_and_score_completions([dict(row) for _ in range(4)])

    # 1. the loss mask TRL multiplies the per-token loss by is 0 exactly on the inserted passages (and EOS, pad)
    loss_mask = (inputs["completion_mask"] * inputs["tool_mask"]).tolist()
    for i, policy in enumerate(turns):
        ids = inputs["completion_ids"][i].tolist()
        text = tokenizer.decode([t for t, m in zip(ids, loss_mask[i], strict=True) if m])
        queries = parse_trace(text).queries
        assert len(queries) == sum("<search>" in t for t in policy)
        blocks = [tokenizer(b, add_special_tokens=False)["input_ids"] for b in env.observe_many(list(queries))]
        masked = [
            t
            for t, m, real in zip(ids, loss_mask[i], inputs["completion_mask"][i].tolist(), strict=True)
            if m == 0 and real
        ]
        assert masked == [t for b in blocks for t in b] + [tokenizer.eos_token_id]  # passages, then the final EOS
        assert "<information>" not in text and "Doc 1" not in text  # no retrieved token counts in the loss
        assert text.startswith(policy[0].split("{")[0])

    # 2. the rewards: only the answer after the last search counts, never the passages or an earlier draft
    names = trainer.reward_func_names
    rewards = captured["rewards"]
    em = rewards[:, names.index("exact_match_reward")].tolist()
    in_passages = rewards[:, names.index("answer_in_retrieved_reward")].tolist()
    assert em == [1.0, 0.0, 0.0, 1.0]
    assert in_passages == [1.0, 1.0, 1.0, 1.0]  # every completion had the answer in front of it
    assert rewards[:, names.index("search_count_reward")].tolist() == [1.0, 1.0, 1.0, 2.0]


def test_a_turns_searches_reach_the_retriever_as_one_batch(small_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    from lowvram_r1.rollout.multiturn import roll_out

    tokenizer = AutoTokenizer.from_pretrained(small_model)
    _, options = demo()
    env = SearchEnvironment(settings(options))
    calls: list[int] = []
    plain = env.retriever.search_many

    def counted(queries: list[str], k: int) -> Any:
        calls.append(len(queries))
        return plain(queries, k)

    monkeypatch.setattr(env.retriever, "search_many", counted)  # the retriever is shared within the process
    turn = tokenizer("<think> x </think>\n<search> Vesna </search>", add_special_tokens=False)["input_ids"]
    roll_out([[1]] * 6, lambda inputs, n: ([turn] * len(inputs), None), tokenizer, env, 400, [tokenizer.eos_token_id])
    assert calls == [6] * env.settings.max_turns  # every turn: one call with all six episodes' queries
