# `make train` and `make test` set everything up on a fresh machine (Python 3.11 with pip and venv).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test test-slow test-all lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/qmix train $(ARGS)

# The default set runs in TEST_WORKERS processes (pytest-xdist: a file, or files sharing programs, per process at
# a time, heaviest first: tests/conftest.py; one compilation cache); TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(ARGS)

# The long learning tests, Ray clusters and signals: one process, so nothing else competes with their timing.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "" $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs/studies

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV)
