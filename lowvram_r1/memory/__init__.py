"""The memory planner: ``planner.plan(cfg, gpu_memory_gb)`` before any weights load, ``fit`` (the cheapest change
that fits, auto-fit), ``shapes`` (a model's architecture read from its config.json, no weights)."""
