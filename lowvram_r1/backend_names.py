"""The backends by name, in ``--backend auto``'s order of preference, each as a "module:Class" string: data only,
below the config schema (which offers the names as ``--backend``'s choices) and the backends (which
:mod:`lowvram_r1.backends.registry` imports by these strings, only when one is used).

Adding a backend: one file with a :class:`~lowvram_r1.backends.base.Backend` subclass, and one line here.
"""

from __future__ import annotations

BACKENDS = {
    "unsloth": "lowvram_r1.backends.unsloth:UnslothBackend",
    "hf": "lowvram_r1.backends.hf:HfBackend",  # last: available everywhere
}
