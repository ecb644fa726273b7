# simpleim — two commands:
#   make run    set up a virtualenv and run the IM server (SQLite, 127.0.0.1:5060 UDP+TCP, domain localhost)
#   make test   set up a virtualenv and run lint, type checks and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test lint typecheck unit interop bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench,postgres,images]'
	touch $(STAMP)

run: $(STAMP)
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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
