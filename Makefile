# Shiftgate: the targets a newcomer can guess.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SG     := $(VENV)/bin/shiftgate

.PHONY: run install dev test test-sqlite test-postgres lint format bench migrate clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

## make run: install, initialise var/ (root key, SQLite), seed the demo, serve on :8000
run: install
	$(SG) init
	$(SG) demo
	$(SG) serve --with-worker

migrate: install
	$(SG) migrate

## make test: the whole suite on SQLite, then on PostgreSQL + Redis
test: test-sqlite test-postgres

test-sqlite: dev
	$(PY) -m pytest

test-postgres: dev
	SHIFTGATE_TEST_BACKEND=postgres $(PY) -m pytest

lint: dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: dev
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	SHIFTGATE_BENCH=1 $(PY) -m pytest tests/bench -m bench -s -p no:cacheprovider
	SHIFTGATE_BENCH=1 SHIFTGATE_TEST_BACKEND=postgres $(PY) -m pytest tests/bench -m bench -s -p no:cacheprovider

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
