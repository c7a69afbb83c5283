"""The run configuration: six frozen sections merged as defaults < recipe YAML < command-line flags, and the one
conversion to TRL's ``GRPOConfig``. Import it whole from here:

    from lowvram_r1 import config
    cfg = config.load("cpu-demo", {"max_steps": 20})   # a recipe name or a YAML file; flat names or "section.field"
    grpo_args = config.to_grpo_config(cfg, "runs/x")    # the one place that builds trl.GRPOConfig

- ``sections.py``: the section dataclasses (``ModelSettings``, ``LoraSettings``, ``TaskSettings``,
  ``TrainingSettings``, ``GenerationSettings``, ``RunSettings``) and ``RunConfig`` holding them: every field's
  default, help, flag name and choices (the CLI generates its flags from them), and the checks that need no model.
- ``loading.py``: YAML recipes read, merged and type-checked; ``load``, ``dump``, ``save``.
- ``trl_args.py``: the transformers ``TrainingArguments`` / ``trl.GRPOConfig`` fields built from a config.
"""

from lowvram_r1.config.loading import (
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    dump,
    from_dict,
    load,
    merge,
    parse_yaml,
    read_yaml,
    save,
)
from lowvram_r1.config.sections import (
    BACKENDS,
    CHECKPOINTING,
    DTYPES,
    LOSS_TYPES,
    MAX_COMPLETIONS_PER_STEP,
    NAME_MAX_BYTES,
    OPTIMIZERS,
    PATH_MAX_BYTES,
    PROMPT_STYLES,
    SECTION_TYPES,
    TINY_PROFILE,
    VLLM_MODES,
    Bounds,
    GenerationSettings,
    LoraSettings,
    ModelSettings,
    RunConfig,
    RunSettings,
    TaskSettings,
    TrainingSettings,
    all_fields,
    check_bounds,
    check_path_text,
    check_server_url,
    flag_name,
    opt,
    require,
    shown,
    spoken,
)
from lowvram_r1.config.trl_args import grpo_config_kwargs, to_grpo_config, trainer_args

# The sections' names before they all ended in Settings, kept for code that imported them.
ModelConfig = ModelSettings
TrainingConfig = TrainingSettings

__all__ = [
    "BACKENDS",
    "CHECKPOINTING",
    "DTYPES",
    "LOSS_TYPES",
    "MAX_COMPLETIONS_PER_STEP",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "NAME_MAX_BYTES",
    "OPTIMIZERS",
    "PATH_MAX_BYTES",
    "PROMPT_STYLES",
    "SECTION_TYPES",
    "TINY_PROFILE",
    "VLLM_MODES",
    "Bounds",
    "GenerationSettings",
    "LoraSettings",
    "ModelSettings",
    "RunConfig",
    "RunSettings",
    "TaskSettings",
    "TrainingSettings",
    "all_fields",
    "check_bounds",
    "check_path_text",
    "check_server_url",
    "dump",
    "flag_name",
    "from_dict",
    "grpo_config_kwargs",
    "load",
    "merge",
    "opt",
    "parse_yaml",
    "read_yaml",
    "require",
    "save",
    "shown",
    "spoken",
    "to_grpo_config",
    "trainer_args",
]
