"""The backends, by name, in ``--backend auto``'s order of preference: the first available one is used.

    backend = get_backend(resolve_backend(cfg, hardware.cuda)[0])

The table lives a floor down, in :mod:`lowvram_r1.backend_names` ("module:Class" strings, so the config schema
reads the names for ``--backend``'s choices without importing a backend); a backend's module loads only when it is
used. Adding a backend: one file with a :class:`~lowvram_r1.backends.base.Backend` subclass, and one line there.
"""

from __future__ import annotations

import importlib
from typing import Any

from lowvram_r1.backend_names import BACKENDS


def backend_class(name: str) -> Any:
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r}: choose one of auto, {', '.join(BACKENDS)}")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def get_backend(name: str) -> Any:
    """A fresh backend object for ``name``."""
    return backend_class(name)()


def resolve_backend(cfg: Any, cuda: bool) -> tuple[str, str]:
    """The backend ``train`` uses for ``cfg`` on this machine, and why (``doctor`` prints the reason)."""
    if cfg.model.backend != "auto":
        return cfg.model.backend, f"--backend {cfg.model.backend} was asked for"
    reasons = []
    for name in BACKENDS:
        ok, reason = backend_class(name).available(cfg, cuda)
        if ok:
            return name, reason if not reasons else reasons[-1]
        reasons.append(reason)
    raise ValueError("no backend can run here")  # unreachable while hf is registered
