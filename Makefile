# Every target works from a fresh clone: the .venv stamp installs flowrt and its dev tools first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-lowest lint bench bench-peers clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "flowrt needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest

# The suite against the lowest dependency versions pyproject.toml allows (ci/lowest.txt), in its
# own environment. Deprecation warnings from old third-party pairs are not flowrt's failures.
LOWEST := .venv-lowest
$(LOWEST)/.installed: pyproject.toml ci/lowest.txt
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/pip install --quiet --upgrade pip
	$(LOWEST)/bin/pip install --quiet -c ci/lowest.txt -e '.[dev]'
	touch $(LOWEST)/.installed

test-lowest: $(LOWEST)/.installed
	$(LOWEST)/bin/python -m pytest -q -W ignore::DeprecationWarning

lint: $(STAMP)
	$(BIN)/ruff check flowrt tests benchmarks examples
	$(BIN)/ruff format --check flowrt tests benchmarks examples
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# LangGraph goes into its own environment, never into the project's.
PEERS := .venv-peers
$(PEERS)/.installed: pyproject.toml
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet --upgrade pip
	$(PEERS)/bin/pip install --quiet -e . langgraph
	touch $(PEERS)/.installed

bench-peers: $(PEERS)/.installed
	$(PEERS)/bin/python -m benchmarks.peers_langgraph

clean:
	rm -rf $(VENV) $(PEERS) $(LOWEST) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
