# Every target works from a fresh clone: the .venv stamp installs flowrt and its dev tools first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-lowest lint bench bench-pythons test-pythons bench-peers clean browser screenshots docs docs-serve

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "flowrt needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP) browser
	$(BIN)/python -m pytest

# The fast loop: everything but the tests marked slow (services, processes, the slowest ones).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The run viewer's browser tests drive Debian's chromium package with Playwright (never
# `playwright install`): installed here with apt-get when run as root. Without it they are
# skipped, except on CI (CI=true), where they fail.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make: installing Debian's chromium for the browser tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium >/dev/null; } || echo "make: apt-get could not install chromium"; \
	else \
	  echo "make: no chromium (as root: apt-get install chromium): the browser tests are skipped"; \
	fi

# The README's screenshots of the run viewer, taken by its browser test.
screenshots: $(STAMP) browser
	FLOWRT_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_ui_browser.py

# The suite against the lowest dependency versions pyproject.toml allows (ci/lowest.txt), in its
# own environment. Deprecation warnings from old third-party pairs are not flowrt's failures.
LOWEST := .venv-lowest
$(LOWEST)/.installed: pyproject.toml ci/lowest.txt
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/pip install --quiet --upgrade pip
	$(LOWEST)/bin/pip install --quiet -c ci/lowest.txt -e '.[dev]'
	touch $(LOWEST)/.installed

test-lowest: $(LOWEST)/.installed browser
	$(LOWEST)/bin/python -m pytest -q -W ignore::DeprecationWarning

lint: $(STAMP)
	$(BIN)/ruff check flowrt tests benchmarks examples
	$(BIN)/ruff format --check flowrt tests benchmarks examples
	$(BIN)/mypy

# Every benchmark, then again on Python 3.12 and 3.13 where this machine has them.
bench: $(STAMP)
	$(BIN)/python -m benchmarks
	bash ci/pythons.sh bench

# The benchmarks, and the engine's semantics tests, on Python 3.12 and 3.13 where this machine
# has them (ci/pythons.sh: an environment each, .venv-py3.12 and .venv-py3.13).
bench-pythons:
	bash ci/pythons.sh bench

test-pythons:
	bash ci/pythons.sh test

# The documentation site (mkdocs.yml, docs/): strict, so a broken link or reference fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict

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
	rm -rf $(VENV) .venv-py3.* $(PEERS) $(LOWEST) build site *.egg-info .pytest_cache .mypy_cache .ruff_cache
