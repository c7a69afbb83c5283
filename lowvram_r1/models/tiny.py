"""The built-in tiny model: a few-million-parameter Qwen2 built and taught locally, so anyone can run the
whole R1 method offline on a CPU.

Building it is R1's first stage in miniature: a byte-level BPE tokenizer trained on the task's own text, a
randomly initialised Qwen2 (head_dim 64, which vLLM's CPU attention requires), then a short cold-start SFT on
procedurally generated, correct task examples (TRL's ``SFTTrainer``) so that GRPO starts with a model that
knows the format and sometimes gets the answer. The result is cached in ``$LOWVRAM_R1_CACHE`` (default
``~/.cache/lowvram_r1``) under a key of every input, and is deterministic for a seed.

    python -m lowvram_r1.models.tiny countdown      # build (or find) the tiny model for a task, print its folder
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lowvram_r1.tasks import TASKS, Split, Task, get_task
from lowvram_r1.tasks.base import PromptFormat

logger = logging.getLogger(__name__)

BUILD_VERSION = 5  # bump when the recipe below changes: a new cache key, so stale models are never reused
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@dataclass(frozen=True)
class TinySpec:
    """Everything that decides the tiny model's weights (and so its cache key)."""

    task: str
    seed: int = 0
    vocab_size: int = 512
    hidden_size: int = 128
    layers: int = 4
    heads: int = 2
    kv_heads: int = 1
    head_dim: int = 64
    intermediate_size: int = 512
    context: int = 512
    sft_examples: int = 8000
    # Cap on cold-start SFT tokens (examples x epochs x tokens): long-prompt tasks (gsm_symbolic) get fewer examples,
    # so every procedural task builds in a few minutes on 2 cores (docs/cli.md: build times).
    sft_token_budget: int = 1_200_000
    sft_epochs: float = 2.0
    sft_learning_rate: float = 3e-3
    sft_batch_size: int = 32
    options: tuple[tuple[str, Any], ...] = ()
    prompt_style: str = "chat"
    system_prompt: str | None = None
    data_path: str | None = None  # a task served from a local file (a user's task): its rows teach the tokenizer
    label: str | None = None  # a task file's own name, the cache key's prefix (not part of its hash)

    def key(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k != "label" and not (k == "data_path" and v is None)}
        blob = json.dumps({**fields, "version": BUILD_VERSION}, sort_keys=True, default=str)
        prefix = self.label or self.task  # old keys stay: a preset's name, a task file's own name
        return f"{prefix}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def cache_dir() -> Path:
    return Path(os.environ.get("LOWVRAM_R1_CACHE") or Path.home() / ".cache" / "lowvram_r1")


def _examples(task: Task, spec: TinySpec) -> list[dict[str, Any]]:
    """Cold-start SFT rows (prompt/completion, conversational) from the task's own generator."""
    # The train split of the same data seed: never a puzzle of the held-out test split.
    split = Split("train", spec.sft_examples, spec.seed, spec.data_path, dict(spec.options))
    rows = task.build_rows(split, PromptFormat(spec.prompt_style, spec.system_prompt))
    if spec.prompt_style == "plain":
        return [{"prompt": r["prompt"], "completion": task.reference_completion(r)} for r in rows]
    return [
        {"prompt": r["prompt"], "completion": [{"role": "assistant", "content": task.reference_completion(r)}]}
        for r in rows
    ]


def _text(messages: str | list[dict[str, str]]) -> str:
    return messages if isinstance(messages, str) else "\n".join(m["content"] for m in messages)


def _train_tokenizer(texts: list[str], spec: TinySpec) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    # Digits stay single tokens so numbers are spelt the same way wherever they appear.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=spec.context
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def _example_text(example: dict[str, Any]) -> str:
    return _text(example["prompt"]) + _text(example["completion"])


def _tokenizer_texts(examples: list[dict[str, Any]]) -> list[str]:
    return [_example_text(ex) for ex in examples] + ["system\nuser\nassistant\n"]


def _task_texts(task: Task, spec: TinySpec) -> list[str]:
    """What the tokenizer learns: the cold-start examples, or for a task that writes no reference completions its
    prompts and answer columns, with the answer format's tags."""
    if task.reference_completion is not None:
        return _tokenizer_texts(_examples(task, spec))
    split = Split("train", spec.sft_examples, spec.seed, spec.data_path, dict(spec.options))
    rows = task.build_rows(split, PromptFormat(spec.prompt_style, spec.system_prompt))
    answers = [" ".join(str(row.get(c, "")) for c in task.answer_columns) for row in rows]
    tags = "<think>\n</think>\n<answer>\n</answer>\n"
    return [_text(row["prompt"]) + tags + answer for row, answer in zip(rows, answers, strict=True)] + [
        "system\nuser\nassistant\n"
    ]


def _task_of(spec: TinySpec, task: Task | None) -> Task:
    """The caller's task object (``run_plan.resolve`` found it), else the preset ``spec`` names."""
    if task is not None:
        return task
    if spec.task not in TASKS:
        raise ValueError(f"the tiny model for {spec.task}: pass its Task object (run_plan.resolve finds it)")
    return TASKS[spec.task]


def ensure_tiny_tokenizer(spec: TinySpec, task: Task | None = None) -> Path:
    """The tiny model's tokenizer folder, trained on first use (seconds): lengths are checked with it before
    the slow part of the build (the SFT) starts. ``task``: the spec's task object (default: the preset's)."""
    task = _task_of(spec, task)

    def build(folder: Path) -> None:
        _train_tokenizer(_task_texts(task, spec), spec).save_pretrained(folder)

    return _cached(cache_dir() / "tiny" / f"{spec.key()}.tokenizer", "tokenizer.json", build)


def _cached(target: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """``target``, built by ``build(folder)`` into a scratch folder and moved into place atomically on first use:
    a concurrent or killed build never leaves a half-built folder behind (``marker`` says it is complete)."""
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(building)
        os.replace(building, target)
    except OSError:
        if not (target / marker).is_file():  # another process won the race: its folder is as good
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def _within_budget(examples: list[dict[str, Any]], tokenizer: Any, spec: TinySpec) -> list[dict[str, Any]]:
    """The first examples whose SFT (all epochs) stays within ``spec.sft_token_budget`` tokens, counted as the
    trainer computes them: each batch padded to its longest example (gsm_symbolic: 484 padded vs 288 mean)."""
    sample = [_example_text(ex) for ex in examples[:512]]
    lengths = [min(len(ids), spec.context) for ids in tokenizer(sample)["input_ids"]]
    batches = [lengths[i : i + spec.sft_batch_size] for i in range(0, len(lengths), spec.sft_batch_size)]
    per_example = sum(max(batch) * len(batch) for batch in batches) / len(lengths)
    keep = max(500, int(spec.sft_token_budget / (spec.sft_epochs * per_example)))
    return examples[:keep]


def _progress_callback(total: int, label: str) -> Any:
    """A progress bar over the cold-start SFT steps (tqdm, on stderr), as a transformers callback."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class BuildProgress(TrainerCallback):
        def __init__(self) -> None:
            self.bar = tqdm(total=total, desc=label, unit="step", dynamic_ncols=True, mininterval=1.0)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.close()

    return BuildProgress()


def _announce_cold_start(task: str, target: Path, size: float, examples: int, steps: int) -> None:
    logger.info(
        "building the tiny model for %s (once; cached in %s): %.2fM parameters, cold-start SFT on %d examples, "
        "%d steps",
        task,
        target.parent,
        size,
        examples,
        steps,
    )


def _build(spec: TinySpec, target: Path, task: Task) -> None:
    import math

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, PrinterCallback, Qwen2Config, Qwen2ForCausalLM
    from trl import SFTConfig, SFTTrainer

    from lowvram_r1.models.cpu_logprob import install

    install()

    tokenizer = AutoTokenizer.from_pretrained(ensure_tiny_tokenizer(spec, task))
    tokenizer.chat_template = CHAT_TEMPLATE
    cold_start = task.reference_completion is not None
    examples = _within_budget(_examples(task, spec), tokenizer, spec) if cold_start else []
    torch.manual_seed(spec.seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.context,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    steps = math.ceil(len(examples) / spec.sft_batch_size * spec.sft_epochs)
    size = sum(p.numel() for p in model.parameters()) / 1e6
    if not cold_start:  # one line says why, and what would give it one
        logger.info(
            "building the tiny model for %s (once; cached in %s): %.2fM parameters, no cold-start SFT: the task "
            "writes no reference completions (give its Task a reference_completion to have one), so GRPO starts "
            "from random weights",
            task.name,
            target.parent,
            size,
        )
        _save(model, tokenizer, spec, target)
        return
    _announce_cold_start(task.name, target, size, len(examples), steps)
    with tempfile.TemporaryDirectory() as scratch:
        args = SFTConfig(
            output_dir=scratch,
            num_train_epochs=spec.sft_epochs,
            learning_rate=spec.sft_learning_rate,
            per_device_train_batch_size=spec.sft_batch_size,
            lr_scheduler_type="cosine",
            warmup_steps=10,
            seed=spec.seed,
            data_seed=spec.seed,
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            # TRL's SFTConfig turns bf16 on by default, which on a CPU means bf16 autocast. The cold start trains in
            # fp32 on every CPU instead: bf16 would give AVX512/AMX machines another model than AVX2-only ones (where
            # bf16 matmuls take a slow fallback: 3.1 s a step against 0.17 s measured), and the demos' recipes are
            # chosen on one model per seed. fp32 is not in the cache key: it is the only choice (BUILD_VERSION 5).
            bf16=False,
            fp16=False,
            gradient_checkpointing=False,  # SFTConfig's default; the tiny model needs no memory saving, only speed
            logging_steps=50,
            disable_tqdm=True,
            max_length=spec.context,
            completion_only_loss=True,  # prompt/completion rows, and the tokenized traces' completion_mask
            dataloader_num_workers=0,
        )
        if task.environment is not None:  # multi-turn traces: the retrieved passages are masked out of the loss
            from lowvram_r1.models.tiny_traces import masked_trace_examples

            rows = masked_trace_examples(examples, tokenizer)
        else:
            rows = examples
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
        trainer.remove_callback(PrinterCallback)  # raw log dicts on stdout; one summary line below instead
        trainer.add_callback(_progress_callback(steps, f"tiny model for {task.name}: cold-start SFT"))
        result = trainer.train()
    # accelerate keeps one AcceleratorState per process, and the next trainer that asks for other mixed precision
    # is refused ("AcceleratorState has already been initialized"): this build's fp32 CPU state must not bind the
    # run's own trainer, built next in the same process (bf16 autocast on a GPU). transformers clears it the same way.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    logger.info("tiny model: cold-start SFT done, final loss %.3f", result.training_loss)
    _save(model, tokenizer, spec, target)


def _save(model: Any, tokenizer: Any, spec: TinySpec, target: Path) -> None:
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    (target / _MODEL_MARKER).write_text(json.dumps(asdict(spec), indent=1, default=str))


def spec_for(
    task: str,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    prompt_style: str = "chat",
    system_prompt: str | None = None,
    data_path: str | None = None,
    label: str | None = None,
    **sizes: Any,
) -> TinySpec:
    """The tiny model's spec for a run's task settings (``sizes`` override the architecture / SFT fields). A
    built-in preset needs its procedural generator (its data is on the hub); a user's task needs only its rows."""
    if task in TASKS and TASKS[task].reference_completion is None and not data_path:
        offline = sorted(n for n, t in TASKS.items() if t.reference_completion is not None)
        raise ValueError(
            f"the built-in tiny model cannot be built for {task}: it needs a task with a procedural generator "
            f"({', '.join(offline)}, rg:<name>); pick one of those, or pass --model NAME (a hub id or a local "
            f"folder) to train {task}"
        )
    return TinySpec(
        task=task,
        seed=seed,
        options=tuple(sorted((options or {}).items())),
        prompt_style=prompt_style,
        system_prompt=system_prompt,
        data_path=data_path,
        label=label,
        **sizes,
    )


def context_for(prompt_tokens: int, completion_tokens: int) -> int:
    """The tiny model's context for a run's lengths: 512, or the next multiple of 512 that holds both (the model
    is built for the run, so the lengths a user picks always fit; RoPE positions cost no parameters)."""
    needed = prompt_tokens + completion_tokens
    return max(TinySpec.context, -(-needed // 512) * 512)


def ensure_tiny_model(spec: TinySpec, task: Task | None = None) -> Path:
    """The folder of the tiny model for ``spec`` (built on first use, then read from the cache). ``task``: the
    spec's task object (default: the preset's)."""
    task = _task_of(spec, task)
    return _cached(cache_dir() / "tiny" / spec.key(), _MODEL_MARKER, lambda folder: _build(spec, folder, task))


def tiny_model_is_built(spec: TinySpec) -> bool:
    """Is the tiny model for ``spec`` in the cache already (so that loading it trains nothing)?"""
    return (cache_dir() / "tiny" / spec.key() / _MODEL_MARKER).is_file()


_MODEL_MARKER = "tiny_spec.json"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    name = sys.argv[1] if len(sys.argv) > 1 else "countdown"
    sys.stdout.write(f"{ensure_tiny_model(spec_for(name), get_task(name))}\n")
