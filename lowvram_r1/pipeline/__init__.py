"""R1's other stages around GRPO: cold-start SFT, rejection sampling, and export (merge, quantise, GGUF)."""
