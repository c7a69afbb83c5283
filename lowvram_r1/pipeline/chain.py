"""The R1 recipe end to end: cold-start SFT -> GRPO -> rejection sampling -> SFT -> GRPO.

    lowvram-r1 pipeline --config configs/cpu-demo.yaml --sft-data traces.jsonl --output-dir runs/r1

Each stage is an ordinary run directory under the output folder (``1-sft``, ``2-grpo``, ``3-samples.jsonl``,
``4-sft``, ``5-grpo``); every stage after the first starts from the previous stage's merged model, so each
LoRA adapter is trained on top of everything learned before it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from lowvram_r1 import config as config_module
from lowvram_r1.config import RunConfig

logger = logging.getLogger(__name__)


def _stage(cfg: RunConfig, output_dir: Path, model: str, **training: Any) -> RunConfig:
    return dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, name=model),
        training=dataclasses.replace(cfg.training, **training),
        run=dataclasses.replace(cfg.run, output_dir=str(output_dir), resume=False),
    )


def run_pipeline(
    cfg: RunConfig,
    sft_data: str,
    root: str | Path,
    samples_per_prompt: int = 8,
    sample_prompts: int = 200,
    sft_steps: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the five stages; returns each stage's summary. ``cfg`` sets the model, task and GRPO settings."""
    from lowvram_r1.evaluate import load_for_inference
    from lowvram_r1.pipeline.export import export_merged
    from lowvram_r1.pipeline.sampling import rejection_sample, write_samples
    from lowvram_r1.pipeline.sft import train_sft
    from lowvram_r1.tasks import Split, get_task
    from lowvram_r1.tasks.base import PromptFormat
    from lowvram_r1.train import engine

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sft_steps = sft_steps or cfg.training.max_steps
    summaries: dict[str, Any] = {}

    logger.info("stage 1/5: cold-start SFT on %s", sft_data)
    summaries["1-sft"] = train_sft(_stage(cfg, root / "1-sft", cfg.model.name, max_steps=sft_steps), sft_data, progress)
    model = str(export_merged(root / "1-sft"))

    logger.info("stage 2/5: GRPO")
    summaries["2-grpo"] = engine.train(_stage(cfg, root / "2-grpo", model), progress)
    model = str(export_merged(root / "2-grpo"))

    logger.info(
        "stage 3/5: rejection sampling, %d completions for each of %d prompts", samples_per_prompt, sample_prompts
    )
    task = get_task(cfg.task.name)
    stage_cfg = _stage(cfg, root / "3-samples", model)
    lm, tokenizer = load_for_inference(stage_cfg)
    fmt = PromptFormat(cfg.task.prompt_style, cfg.task.system_prompt, cfg.task.assistant_prefill)
    rows = task.build_rows(
        Split("train", sample_prompts, cfg.task.data_seed + 1, cfg.task.data_path, dict(cfg.task.options)), fmt
    )
    kept, stats = rejection_sample(
        lm, tokenizer, task, rows, samples_per_prompt, cfg.generation.max_completion_length, cfg.generation.temperature
    )
    samples = root / "3-samples.jsonl"
    write_samples(kept, stats, samples)
    summaries["3-samples"] = stats.__dict__
    if not kept:
        raise ValueError("rejection sampling kept no completion: train longer before sampling, or sample more (--n)")

    logger.info("stage 4/5: SFT on %d kept completions", len(kept))
    summaries["4-sft"] = train_sft(_stage(cfg, root / "4-sft", model, max_steps=sft_steps), str(samples), progress)
    model = str(export_merged(root / "4-sft"))

    logger.info("stage 5/5: GRPO")
    summaries["5-grpo"] = engine.train(_stage(cfg, root / "5-grpo", model), progress)
    config_module.save(cfg, root / "pipeline.yaml")
    return summaries
