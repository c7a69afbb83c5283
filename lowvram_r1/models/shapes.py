"""Model shapes for the memory planner: a built-in table of common models, a local ``config.json``, or ``tiny``.

    from lowvram_r1.models.shapes import architecture
    arch = architecture("unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit")   # the table works offline
    arch.params, arch.lora_params(16, "all-linear")

The table holds the values of each model's published ``config.json`` (text part for multimodal ones). Unsloth
re-uploads (``unsloth/...-bnb-4bit``, ``-unsloth-bnb-4bit``) share their original's shape; ``prequantized`` tells
the planner the checkpoint is stored in 4-bit whatever ``load_in_4bit`` says. No torch, no network.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Architecture:
    """What memory depends on. ``extra_params``: weights outside the decoder (e.g. Gemma-3-4B's vision tower)."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    max_position: int
    qk_norm: bool = False
    norms_per_layer: int = 2
    extra_params: int = 0
    prequantized: bool = False
    source: str = "built-in table"

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def config_fields(self) -> dict[str, int | bool]:
        """The transformers config fields of this shape (``Qwen2Config(**a.config_fields())``): random-weight models
        of a known architecture for the benches and the GPU check kit."""
        return {
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "intermediate_size": self.intermediate,
            "vocab_size": self.vocab,
            "tie_word_embeddings": self.tied,
        }

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each decoder linear, by its usual module name."""
        h, i = self.hidden, self.intermediate
        return {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    @property
    def linear_params(self) -> int:
        """Decoder linear weights: what bitsandbytes quantises (embeddings, norms and lm_head stay 16-bit)."""
        return self.layers * sum(a * b for a, b in self.linear_shapes().values())

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def other_params(self) -> int:
        """Norm weights (and Qwen2's q/k/v biases, approximated by the norms' order of size)."""
        qk = 2 * self.head_dim if self.qk_norm else 0
        return self.layers * (self.norms_per_layer * self.hidden + qk + self.q_dim + 2 * self.kv_dim) + self.hidden

    @property
    def params(self) -> int:
        return self.linear_params + self.embedding_params + self.other_params + self.extra_params

    def lora_params(self, r: int, target_modules: str) -> int:
        """Adapter parameters: r x (in + out) per targeted linear per layer."""
        names = LORA_MODULES if target_modules == "all-linear" else {t.strip() for t in target_modules.split(",")}
        fused = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}
        shapes = self.linear_shapes()
        total = 0
        for name in names:
            if name in fused:  # Phi-style fused projections: one adapter over the concatenated outputs
                parts = [shapes[p] for p in fused[name]]
                total += r * (parts[0][0] + sum(out for _, out in parts))
            elif name in shapes:
                total += r * sum(shapes[name])
        return self.layers * total

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        return 2 * self.layers * self.kv_dim * dtype_bytes


def _arch(
    name: str,
    h: int,
    layers: int,
    heads: int,
    kv: int,
    i: int,
    vocab: int,
    tied: bool,
    ctx: int,
    head_dim: int | None = None,
    **extra: object,
) -> Architecture:
    return Architecture(name, h, layers, heads, kv, head_dim or h // heads, i, vocab, tied, ctx, **extra)  # type: ignore[arg-type]


# Values from each model's published config.json on the Hugging Face hub.
TABLE: dict[str, Architecture] = {
    a.name: a
    for a in (
        _arch("qwen2.5-0.5b", 896, 24, 14, 2, 4864, 151936, True, 32768),
        _arch("qwen2.5-1.5b", 1536, 28, 12, 2, 8960, 151936, True, 32768),
        _arch("qwen2.5-3b", 2048, 36, 16, 2, 11008, 151936, True, 32768),
        _arch("qwen2.5-7b", 3584, 28, 28, 4, 18944, 152064, False, 32768),
        _arch("qwen3-0.6b", 1024, 28, 16, 8, 3072, 151936, True, 40960, 128, qk_norm=True),
        _arch("qwen3-1.7b", 2048, 28, 16, 8, 6144, 151936, True, 40960, 128, qk_norm=True),
        _arch("qwen3-4b", 2560, 36, 32, 8, 9728, 151936, True, 40960, 128, qk_norm=True),
        _arch("qwen3-8b", 4096, 36, 32, 8, 12288, 151936, False, 40960, 128, qk_norm=True),
        _arch("llama-3.2-1b", 2048, 16, 32, 8, 8192, 128256, True, 131072, 64),
        _arch("llama-3.2-3b", 3072, 28, 24, 8, 8192, 128256, True, 131072, 128),
        _arch("llama-3.1-8b", 4096, 32, 32, 8, 14336, 128256, False, 131072, 128),
        _arch("gemma-3-1b", 1152, 26, 4, 1, 6912, 262144, True, 32768, 256, qk_norm=True, norms_per_layer=4),
        # gemma-3-4b-it is multimodal: its SigLIP vision tower and projector (~0.42B) load with it
        _arch(
            "gemma-3-4b",
            2560,
            34,
            8,
            4,
            10240,
            262208,
            True,
            131072,
            256,
            qk_norm=True,
            norms_per_layer=4,
            extra_params=420_000_000,
        ),
        _arch("phi-4-mini", 3072, 32, 24, 8, 8192, 200064, True, 131072, 128),
    )
}
_SUFFIXES = re.compile(r"(-unsloth)?(-bnb)?(-4bit|-16bit)$|-(instruct|it|base|chat)$|-\d{4}$")


def table_key(name: str) -> tuple[str, bool]:
    """``unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit`` -> (``llama-3.1-8b``, prequantized=True)."""
    key = name.strip().rstrip("/").split("/")[-1].lower()
    prequantized = "bnb-4bit" in key
    key = key.removeprefix("meta-")
    while (stripped := _SUFFIXES.sub("", key)) != key:
        key = stripped
    return key, prequantized


def from_config_json(path: Path, name: str) -> Architecture:
    """Shape from a transformers ``config.json`` (the ``text_config`` part of multimodal ones)."""
    data = json.loads(path.read_text())
    text = data.get("text_config", data)
    needed = ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "vocab_size")
    missing = [key for key in needed if key not in text]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: the planner cannot tell this model's shape")
    h, heads = text["hidden_size"], text["num_attention_heads"]
    model_type = str(text.get("model_type", ""))
    quant = data.get("quantization_config") or {}
    return Architecture(
        name=name,
        hidden=h,
        layers=text["num_hidden_layers"],
        heads=heads,
        kv_heads=text.get("num_key_value_heads") or heads,
        head_dim=text.get("head_dim") or h // heads,
        intermediate=text["intermediate_size"],
        vocab=text["vocab_size"],
        tied=bool(data.get("tie_word_embeddings", text.get("tie_word_embeddings", True))),
        max_position=text.get("max_position_embeddings") or 0,
        qk_norm=model_type.startswith(("qwen3", "gemma3")),
        norms_per_layer=4 if model_type.startswith(("gemma2", "gemma3")) else 2,
        prequantized=bool(quant.get("load_in_4bit")) or quant.get("bnb_4bit_quant_type") == "nf4",
        source=str(path),
    )


def _tiny() -> Architecture:
    from lowvram_r1.models.tiny import TinySpec  # imports the task registry only, no torch

    s = TinySpec(task="countdown")
    return Architecture(
        "tiny",
        s.hidden_size,
        s.layers,
        s.heads,
        s.kv_heads,
        s.head_dim,
        s.intermediate_size,
        s.vocab_size,
        True,
        s.context,
        source="models/tiny.py TinySpec defaults",
    )


@lru_cache(maxsize=64)
def architecture(model_name_or_path: str) -> Architecture:
    """Shape of a model: ``tiny``, a local folder (or cached hub id) with config.json, or the built-in table."""
    if model_name_or_path == "tiny":
        return _tiny()
    local = Path(model_name_or_path).expanduser()
    if (local / "config.json").is_file():
        return from_config_json(local / "config.json", model_name_or_path)
    key, prequantized = table_key(model_name_or_path)
    if key in TABLE:
        return replace(TABLE[key], prequantized=prequantized, name=model_name_or_path)
    from lowvram_r1.models.source import model_config_file  # the hub cache, if the model was ever downloaded

    cached = model_config_file(model_name_or_path) if not local.exists() else None
    if cached is not None and cached.is_file():
        return from_config_json(cached, model_name_or_path)
    raise ValueError(
        f"no shape known for model {model_name_or_path!r}: it is not a local folder with config.json and not in "
        f"the planner's table ({', '.join(TABLE)}); pass a local model folder with --model PATH"
    )
