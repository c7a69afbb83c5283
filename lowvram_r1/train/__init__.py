"""Training: ``engine.train(cfg)`` (GRPO, top to bottom), the recorder callback that writes the run directory.

from lowvram_r1.train import engine
summary = engine.train(config.load("cpu-demo"))
"""
