"""Simulated hardware profiles: every decision taken from the hardware is a pure function of a description, so
tests run it against cards these machines do not have. Memory as drivers report it (GiB, a little under the box)."""

from __future__ import annotations

from lowvram_r1.models.hardware import Hardware

PROFILES = {
    "t4": Hardware(cuda=True, name="Tesla T4", memory_gb=14.74, bf16=False, compute_capability=(7, 5)),
    "laptop-8gb": Hardware(
        cuda=True, name="NVIDIA GeForce RTX 3070 Laptop GPU", memory_gb=7.79, bf16=True, compute_capability=(8, 6)
    ),
    "rtx4090": Hardware(
        cuda=True, name="NVIDIA GeForce RTX 4090", memory_gb=23.54, bf16=True, compute_capability=(8, 9)
    ),
    "h100": Hardware(cuda=True, name="NVIDIA H100 80GB HBM3", memory_gb=79.19, bf16=True, compute_capability=(9, 0)),
    "none": Hardware(cuda=False, name="cpu", memory_gb=0.0, bf16=False, gpu_count=0),
}
