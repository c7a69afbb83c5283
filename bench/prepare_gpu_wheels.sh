#!/usr/bin/env bash
# The wheel folders the GPU check kit needs on a bare GPU machine that has no network (bench/gpu_check.py).
#
#     bash bench/prepare_gpu_wheels.sh            # here, with network: fills .whl/core and .whl/unsloth
#                                                 # (.whl/ is git-ignored: the device tool's `carry` takes it)
#
# The lent machine (Python 3.12, x86_64) already has torch 2.11 + CUDA 13, transformers 5.17, accelerate, peft,
# numpy, pandas, pyarrow, safetensors, sentencepiece, tokenizers, huggingface-hub, xxhash, fsspec, httpx, triton: none
# of them travels, and every wheel here is downloaded and installed with --no-deps into a folder of its own
# (--target /tmp/site), so nothing can replace the machine's torch. What the kit imports beyond them travels, at most
# ~60 MB per command (64 MiB a call), so Unsloth goes in a second one:
#   .whl/core     trl, datasets (+ dill, multiprocess), bitsandbytes (CUDA 13.0 library included), math-verify
#                 (+ latex2sympy2_extended, antlr4), bm25s (the search case's retriever)            ~44 MB
#   .whl/unsloth  unsloth, unsloth_zoo (+ tyro, hf_transfer, cut_cross_entropy, msgspec, torchao)   ~38 MB
# unsloth's own requirements torchvision, triton and xformers are not taken: the machine has the first two built for
# its torch, and xformers has no build for CUDA 13 (Unsloth falls back to SDPA).
# The exact commands to run there, in order, are in docs/gpu-check-kit.md.
# vLLM (hundreds of MB, pinned to torch 2.13) cannot travel: the kit's server case says so and is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PLATFORM=(--only-binary=:all: --no-deps --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
          --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
fetch() { local folder=$1; shift; mkdir -p "$folder"; python3 -m pip download -q "${PLATFORM[@]}" -d "$folder" "$@"; }
fetch .whl/core trl==1.15.0 "datasets>=4,<5" "dill==0.4.1" "multiprocess==0.70.19" "bitsandbytes==0.50.2" \
    "math-verify==0.9.0" "latex2sympy2_extended" "antlr4-python3-runtime==4.13.2" "bm25s==0.3.16"
fetch .whl/unsloth unsloth==2026.10.9 unsloth_zoo==2026.10.9 tyro hf_transfer cut_cross_entropy msgspec torchao
du -sh .whl/core .whl/unsloth
for folder in .whl/core .whl/unsloth; do
    size=$(du -sm "$folder" | cut -f1)
    if [ "$size" -gt 60 ]; then echo "warning: $folder is ${size} MB, over the ~60 MB a command can carry" >&2; fi
done
