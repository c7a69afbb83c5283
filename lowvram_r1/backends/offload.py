"""Offloaded gradient checkpointing for the ``hf`` backend (``model.gradient_checkpointing: offload``).

    from lowvram_r1.backends.offload import offload_checkpoints
    offload_checkpoints(model)                 # before anything switches checkpointing on
    model.gradient_checkpointing_enable()      # every call from now on offloads (transformers, peft, TRL's)

Plain checkpointing keeps one tensor per decoder layer on the GPU from the forward to the backward: the layer's
input (``batch x sequence x hidden``), from which backward recomputes the layer. Offloaded, that input waits in CPU
RAM instead — pinned when CUDA is present, so the copies are asynchronous to the host — and comes back to the GPU
when the backward reaches its layer. The GPU saves ``layers - 1`` hidden states (the layer being recomputed holds
one); CPU RAM holds ``layers`` of them; each step copies them out and back once.

It is built from torch's own pieces: :func:`torch.utils.checkpoint.checkpoint` inside
:class:`torch.autograd.graph.save_on_cpu`. Non-reentrant checkpointing saves the layer's positional inputs through
the saved-tensor hooks active when the layer starts (that is ``save_on_cpu``'s pack hook) and everything inside
the layer through its own hooks, which store nothing and recompute in backward — so exactly the checkpoint
boundaries move to CPU and nothing else does. Keyword inputs (the attention mask, the rotary embeddings) are shared
by all layers and stay where they are.

How it differs from Unsloth's ``use_gradient_checkpointing="unsloth"`` (unsloth_zoo ``gradient_checkpointing.py``,
which the ``unsloth`` backend uses for ``offload``): Unsloth writes each layer's hidden state into pinned host
buffers it allocates once and reuses every step, copies on a side CUDA stream, and prefetches the next layer's
input back to a double-buffered GPU slot while backward still works on the current one; it also switches itself
to plain checkpointing below 512-token sequences. Ours allocates through torch's caching pinned-memory allocator,
copies on the compute stream and brings each input back only when backward needs it: simpler and device-agnostic
(it runs on CPU, ROCm and any torch device), slower per step than Unsloth's, with the same memory saving.

Why not transformers' own ``gradient_checkpointing_enable(offload=True)`` (5.17): it asks for pinned memory even
with no accelerator, which fails on a CPU-only torch ("pin_memory=True requires a CUDA or other accelerator
backend"), and TRL 1.15 switches checkpointing off and on again around generation with no arguments
(``unwrap_model_for_generation``), which would silently drop the offload after the first rollout. So the model
itself remembers it: :func:`offload_checkpoints` makes every later ``gradient_checkpointing_enable`` offload.
"""

from __future__ import annotations

import functools
import logging
import types
from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.graph import save_on_cpu
from torch.utils.checkpoint import checkpoint

logger = logging.getLogger(__name__)


def offloaded_checkpoint(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """:func:`torch.utils.checkpoint.checkpoint` whose saved inputs wait in CPU RAM (pinned when CUDA is present)."""
    with save_on_cpu(pin_memory=torch.cuda.is_available()):
        return checkpoint(function, *args, **kwargs)


def offload_checkpoints(model: Any) -> None:
    """Make every later ``model.gradient_checkpointing_enable(...)`` offload its checkpoints to CPU RAM.

    ``model`` is a transformers ``PreTrainedModel`` (a peft model wrapping it finds the method through its own
    attribute lookup). The method is bound to the instance, so a deep copy of the model offloads too (its own layers).
    """
    model.gradient_checkpointing_enable = types.MethodType(_offloading_enable, model)
    logger.info(
        "gradient checkpointing: each layer's input waits in CPU RAM (%s)",
        "pinned" if torch.cuda.is_available() else "no CUDA: nothing to move",
    )


def _offloading_enable(
    self: Any, gradient_checkpointing_kwargs: dict | None = None, every_n_layers: int = 1, offload: bool = False
) -> None:
    """transformers' ``gradient_checkpointing_enable`` with :func:`offloaded_checkpoint` as the layers' checkpoint
    function. The arguments of each call are kept (``use_reentrant``, ``every_n_layers``); an ``offload`` key or
    argument, transformers' own switch, is ignored: this replaces it."""
    kwargs = dict(gradient_checkpointing_kwargs or {})
    kwargs.pop("offload", None)
    kwargs.setdefault("use_reentrant", False)  # transformers' default; torch's own would warn and re-enter
    type(self).gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=kwargs, every_n_layers=every_n_layers)
    self._set_gradient_checkpointing(  # the flags and input grads are set: now swap in our checkpoint function
        enable=True,
        gradient_checkpointing_func=functools.partial(offloaded_checkpoint, **kwargs),
        every_n_layers=every_n_layers,
    )
