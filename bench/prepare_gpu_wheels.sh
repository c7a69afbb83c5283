#!/usr/bin/env bash
# The wheel folders the GPU check kit needs on a bare GPU machine that has no network (bench/gpu_check.py).
#
#     bash bench/prepare_gpu_wheels.sh            # here, with network: fills .whl/core and .whl/unsloth
#                                                 # (.whl/ is git-ignored: the device tool's `carry` takes it)
#
# The lent machine (Python 3.12, x86_64) already has torch, transformers, peft, accelerate, numpy, pandas, pyarrow,
# safetensors, sentencepiece, tokenizers and huggingface-hub; what the kit imports beyond them travels as wheels,
# at most ~60 MB per command, so Unsloth goes in a second one:
#   .whl/core     trl, datasets (+ dill, multiprocess), bitsandbytes, math-verify (+ latex2sympy2_extended, antlr4)
#   .whl/unsloth  unsloth, unsloth_zoo (+ the few of their needs the image lacks)
# There, first command (carry .whl/core, ~44 MB):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/core/*.whl && export PYTHONPATH=/tmp/site
#   python3 bench/gpu_check.py --out $OUT
# then, while the machine is still warm (it keeps /tmp/site; 30 s), the second (carry .whl/unsloth, ~38 MB: both
# folders together are over the 64 MiB a call carries):
#   test -d /tmp/site/trl || { echo "/tmp/site is gone (a fresh machine): run the first command again"; exit 3; }
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/unsloth/*.whl \
#       && export PYTHONPATH=/tmp/site && python3 bench/gpu_check.py --out $OUT --unsloth
# vLLM (hundreds of MB, pinned to torch 2.13) cannot travel: the kit measures without it and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
PLATFORM=(--only-binary=:all: --no-deps --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
          --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
fetch() { local folder=$1; shift; mkdir -p "$folder"; python3 -m pip download -q "${PLATFORM[@]}" -d "$folder" "$@"; }
fetch .whl/core trl==1.15.0 "datasets>=4,<5" dill multiprocess "bitsandbytes==0.50.2" \
    "math-verify==0.9.0" "latex2sympy2_extended" "antlr4-python3-runtime==4.13.2"
fetch .whl/unsloth unsloth==2026.10.9 unsloth_zoo==2026.10.9 tyro hf_transfer cut_cross_entropy msgspec torchao
du -sh .whl/core .whl/unsloth
for folder in .whl/core .whl/unsloth; do
    size=$(du -sm "$folder" | cut -f1)
    if [ "$size" -gt 60 ]; then echo "warning: $folder is ${size} MB, over the ~60 MB a command can carry" >&2; fi
done
