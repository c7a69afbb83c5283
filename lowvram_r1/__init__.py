"""lowvram-r1: R1-style GRPO reasoning training on one consumer GPU (or a CPU, with the built-in tiny model)."""

__version__ = "0.1.0"
