"""Chained training stages: by default R1's recipe, cold-start SFT -> GRPO -> rejection sampling -> SFT -> GRPO.

    lowvram-r1 pipeline --config cpu-demo --sft-data traces.jsonl --output-dir runs/r1
    lowvram-r1 pipeline --task r1_searcher --model tiny --output-dir runs/r1s   # its own: grpo:stage=1 grpo:stage=2
    lowvram-r1 pipeline --task countdown --model tiny --stages grpo sample sft grpo --output-dir runs/r1z

``--stages`` names the chain: ``sft``, ``grpo`` and ``sample``, each optionally followed by ``:key=value,...``,
task options for that stage alone (``grpo:stage=1``). A task can declare its own chain (``Task.pipeline``):
R1-Searcher's two RL stages are ``grpo:stage=1`` then ``grpo:stage=2``. Each stage is an ordinary run directory
under the output folder (``1-sft``, ``2-grpo``, ``3-samples.jsonl``, ...); every stage after the first starts
from the previous training stage's merged model, so each LoRA adapter is trained on top of everything learned
before it. An ``sft`` stage trains on ``--sft-data`` until a ``sample`` stage has run, then on its samples.
The whole chain is checked (stage names, task options, the SFT data) before the first stage starts.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lowvram_r1 import config as config_module
from lowvram_r1.config import RunConfig
from lowvram_r1.run_plan import RunPlan, plan_of, resolve

logger = logging.getLogger(__name__)

STAGE_KINDS = ("sft", "grpo", "sample")
R1_STAGES = ("sft", "grpo", "sample", "sft", "grpo")


@dataclass(frozen=True)
class Stage:
    kind: str  # sft, grpo or sample
    options: tuple[tuple[str, Any], ...] = ()  # task options for this stage only, typed as YAML types them

    @classmethod
    def parse(cls, spec: str) -> Stage:
        kind, _, rest = spec.strip().partition(":")
        if kind not in STAGE_KINDS:
            raise ValueError(f"pipeline stage {spec!r}: the stages are {', '.join(STAGE_KINDS)} (e.g. grpo:stage=1)")
        options = []
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"pipeline stage {spec!r}: options are key=value pairs (e.g. grpo:stage=1)")
            options.append((key.strip(), yaml.safe_load(value.strip()) if value.strip() else ""))
        return cls(kind, tuple(options))


def plan_stages(run: RunPlan | RunConfig, stages: Sequence[str] | None, sft_data: str | None) -> list[Stage]:
    """The chain to run, checked: ``stages`` as given, else the task's own chain, else R1's (a bare config is
    resolved)."""
    run = plan_of(run)
    task = run.task
    plan = [Stage.parse(s) for s in (stages or task.pipeline or R1_STAGES)]
    sampled = False
    for stage in plan:
        task.resolve_options({**run.cfg.task.options, **dict(stage.options)})  # unknown options fail here, not later
        if stage.kind == "sft" and not sampled:
            if not sft_data:
                raise ValueError(
                    "this pipeline's first SFT stage needs --sft-data (cold-start traces, a jsonl), "
                    "or leave it out: --stages grpo sample sft grpo"
                )
            if Path(sft_data).suffix in (".jsonl", ".json", ".parquet") and not Path(sft_data).is_file():
                raise ValueError(f"--sft-data {sft_data}: no such file")
        sampled = sampled or stage.kind == "sample"
    if plan[-1].kind == "sample":
        logger.info("the pipeline ends with rejection sampling: its samples are its last output")
    return plan


def _stage(cfg: RunConfig, output_dir: Path, model: str, options: dict[str, Any], **training: Any) -> RunConfig:
    return dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, name=model),
        task=dataclasses.replace(cfg.task, options={**cfg.task.options, **options}),
        training=dataclasses.replace(cfg.training, **training),
        run=dataclasses.replace(cfg.run, output_dir=str(output_dir), resume=False),
    )


def _sample(run: RunPlan, out: Path, samples_per_prompt: int, sample_prompts: int) -> tuple[Path, dict[str, Any]]:
    from lowvram_r1.pipeline.sampling import rejection_sample, write_samples
    from lowvram_r1.train.evaluate import load_for_inference, task_generator

    cfg, task = run.cfg, run.task
    lm, tokenizer = load_for_inference(run)
    options = dict(run.options)
    rows = run.rows("train", sample_prompts, seed_offset=1)  # other prompts than the cold start's
    g = cfg.generation
    generator = task_generator(task, options, lm, tokenizer)  # search tasks search while sampling
    kept, stats = rejection_sample(
        lm, tokenizer, task, rows, samples_per_prompt, g.max_completion_length, g.temperature, generator
    )
    write_samples(kept, stats, out)
    if not kept:
        raise ValueError("rejection sampling kept no completion: train longer before sampling, or sample more (--n)")
    return out, stats.__dict__


def run_pipeline(
    cfg: RunConfig,
    sft_data: str | None,
    root: str | Path,
    samples_per_prompt: int = 8,
    sample_prompts: int = 200,
    sft_steps: int | None = None,
    progress: bool = True,
    stages: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run the stages (see the module docstring); returns each stage's summary, keyed by its folder name.
    ``cfg`` sets the model, task and GRPO settings; it is resolved once, and each stage runs the same task with its
    own settings (``RunPlan.with_config``)."""
    from lowvram_r1.pipeline.export import export_merged
    from lowvram_r1.pipeline.sft import train_sft
    from lowvram_r1.train import engine

    run = resolve(cfg)
    cfg = run.cfg
    plan = plan_stages(run, stages, sft_data)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sft_steps = sft_steps or cfg.training.max_steps
    summaries: dict[str, Any] = {}
    model, data, trained = cfg.model.name, sft_data, None
    for number, stage in enumerate(plan, 1):
        if trained is not None:  # the previous training stage's merged model is where this stage starts
            model, trained = str(export_merged(trained)), None
        options = dict(stage.options)
        shown = f"{stage.kind}:{','.join(f'{k}={v}' for k, v in stage.options)}" if options else stage.kind
        logger.info("stage %d/%d: %s", number, len(plan), shown)
        if stage.kind == "sample":
            name = f"{number}-samples"
            stage_run = run.with_config(_stage(cfg, root / name, model, options))
            samples, summaries[name] = _sample(stage_run, root / f"{name}.jsonl", samples_per_prompt, sample_prompts)
            data = str(samples)
            continue
        name = f"{number}-{stage.kind}"
        if stage.kind == "sft":
            stage_run = run.with_config(_stage(cfg, root / name, model, options, max_steps=sft_steps))
            summaries[name] = train_sft(stage_run, str(data), progress)
        else:
            summaries[name] = engine.train(run.with_config(_stage(cfg, root / name, model, options)), progress)
        trained = root / name
    config_module.save(cfg, root / "pipeline.yaml")
    return summaries
