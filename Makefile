# simpleim — two commands:
#   make run    set up a virtualenv with simpleim (server + CLI only) and run the IM server
#               (SQLite ./simpleim.db, 127.0.0.1:5060 UDP+TCP, domain localhost)
#   make test   set up a virtualenv with the test tools too and run lint, type checks and the
#               whole test suite
# make install  only the first half of `make run`: .venv with the `simpleim` command, no server
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# What `make run` / `make install` put in the venv: simpleim and its runtime dependencies
# (+ Pillow for image thumbnails); `make test` adds the test, benchmark and PostgreSQL tools.
RUN_STAMP := $(VENV)/.installed-run
STAMP     := $(VENV)/.installed
ARGS   ?=

# Caches and bytecode of lint, type checks and tests go to a temp dir, not into the checkout
# (the pytest cache and Hypothesis database follow SIMPLEIM_TEST_CACHE, see tests/conftest.py).
export SIMPLEIM_TEST_CACHE ?= $(or $(TMPDIR),/tmp)/simpleim-test-cache-$(shell id -u)
export PYTHONPYCACHEPREFIX ?= $(SIMPLEIM_TEST_CACHE)/pycache
export MYPY_CACHE_DIR ?= $(SIMPLEIM_TEST_CACHE)/mypy
export RUFF_CACHE_DIR ?= $(SIMPLEIM_TEST_CACHE)/ruff

.PHONY: install run test lint typecheck unit interop bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[images]'
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[test,bench,postgres,images]'
	touch $(STAMP) $(RUN_STAMP)

install: $(RUN_STAMP)
	@echo "simpleim installed in $(VENV): run '. $(BIN)/activate' (or use $(BIN)/simpleim)"

run: $(RUN_STAMP)
	$(BIN)/simpleim server $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src/simpleim

unit: $(STAMP)
	$(BIN)/pytest -q -m "not interop" $(ARGS)

interop: $(STAMP)
	$(BIN)/pytest -q -m interop $(ARGS)

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -ra $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build src/*.egg-info \
		$(SIMPLEIM_TEST_CACHE)
