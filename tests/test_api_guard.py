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
from lowvram_r1.models import unsloth_backend

UNSLOTH_VERSION = "2026.10.9"
PACKAGE = Path(__file__).resolve().parents[1] / "lowvram_r1"
RECEIVERS = {"FastLanguageModel", "fast_language_model"}  # how the package names Unsloth's loader class


@dataclasses.dataclass(frozen=True)
class Signature:
    named: frozenset[str]  # parameters a keyword can bind to by name
    var_keyword: bool  # has **kwargs (keywords outside `named` would be forwarded somewhere else, unchecked)


def _pyproject_pin() -> str:
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    assert f'"unsloth=={UNSLOTH_VERSION}"' in text, "pyproject's unsloth pin moved: update UNSLOTH_VERSION here"
    return UNSLOTH_VERSION


@pytest.fixture(scope="module")
def unsloth_wheel(offline_cache: Path) -> zipfile.ZipFile:
    folder = offline_cache / "wheels"
    name = f"unsloth-{_pyproject_pin()}-py3-none-any.whl"
    if not (folder / name).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", f"unsloth=={UNSLOTH_VERSION}", "--no-deps", "-q",
                   "-d", str(folder)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        except subprocess.TimeoutExpired:
            pytest.skip("PyPI did not answer within 10 minutes: cannot fetch the unsloth wheel to check against")
        if result.returncode != 0 or not (folder / name).is_file():
            pytest.skip(f"cannot fetch unsloth=={UNSLOTH_VERSION} from the registry: {result.stderr.strip()[-300:]}")
    return zipfile.ZipFile(folder / name)


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
        config.load(None, {"model": "m", "dtype": "bfloat16", "gradient_checkpointing": False,
                           "lora-target-modules": "q_proj,v_proj"}),
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
    assert {"model_name", "max_seq_length", "load_in_4bit", "fast_inference", "gpu_memory_utilization",
            "max_lora_rank"} <= ours  # the builders really produce the keywords
    assert not missing(ours, sig), f"FastLanguageModel.from_pretrained has no parameter {missing(ours, sig)}"


def test_get_peft_model_takes_every_keyword_we_pass(unsloth_wheel: zipfile.ZipFile) -> None:
    # FastLanguageModel.get_peft_model is `(model, *args, **kwargs)` wrapped around FastLlamaModel.get_peft_model:
    # check that it still forwards there, then check the real signature.
    wrapper = method(parse(unsloth_wheel, "unsloth/models/loader.py"), "FastLanguageModel", "get_peft_model")
    forwards = [
        n for n in ast.walk(wrapper)
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "FastLlamaModel.get_peft_model"
    ]
    assert forwards, "FastLanguageModel.get_peft_model no longer forwards to FastLlamaModel.get_peft_model"
    sig = signature(method(parse(unsloth_wheel, "unsloth/models/llama.py"), "FastLlamaModel", "get_peft_model"))
    ours = our_peft_keywords()
    assert {"r", "lora_alpha", "target_modules", "use_gradient_checkpointing", "random_state"} <= ours
    assert not missing(ours, sig), f"FastLlamaModel.get_peft_model has no parameter {missing(ours, sig)}"


def test_what_we_rely_on_at_import_is_still_there(unsloth_wheel: zipfile.ZipFile) -> None:
    """Importing unsloth patches trl's GRPOTrainer (a module-level PatchFastRL call), standby is read from
    UNSLOTH_VLLM_STANDBY, unsloth only warns when transformers/trl/peft came first (so we must refuse)."""
    llama = parse(unsloth_wheel, "unsloth/models/llama.py")
    module_calls = [ast.unparse(n.value.func) for n in llama.body if isinstance(n, ast.Expr)
                    and isinstance(n.value, ast.Call)]
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
    assert "reward_weights" in attributes_set_on_grpo_args()  # the engine's post-construction assignment is seen
    assert {"num_generations", "use_vllm", "loss_type"} <= ours
    assert not ours - grpo_fields(), f"trl.GRPOConfig has no field {ours - grpo_fields()}"


def test_a_bogus_grpo_field_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = config.grpo_config_kwargs
    monkeypatch.setattr(config, "grpo_config_kwargs", lambda *a, **k: {**real(*a, **k), "num_generation": 8})
    assert our_grpo_fields() - grpo_fields() == {"num_generation"}
