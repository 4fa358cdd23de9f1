# Two commands on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv (idempotently, pinned by requirements.lock) and then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist workers for `make test`. Each has its own PostgreSQL database, SQLite
# file, Mosquitto brokers and mail directory (tests/conftest.py); many tests wait on
# I/O (servers, brokers, subprocess agents, PostgreSQL), so more workers than cores.
TEST_WORKERS ?= 4

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==25.3
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/erp demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

bench: $(STAMP)
	$(BIN)/erp bench ingest

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
