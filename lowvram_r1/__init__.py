"""lowvram-r1: R1-style GRPO reasoning training on one consumer GPU (or a CPU, with the built-in tiny model)."""

__version__ = "0.1.0"

import warnings

# TRL 1.15 warns at import about any vLLM newer than 0.31; the pinned 0.32 is the one our rollout path is tested
# with (tests/rollout/test_rollout.py), so the repeated warnings say nothing to act on. Set here, not in the CLI
# alone, so that every process of ours has it: the panel's and the notebook's children, Try it, the notebook kernel.
warnings.filterwarnings("ignore", message="TRL currently supports vLLM versions")
