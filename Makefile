# Pleno: the single entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Pleno needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv and install the locked dependencies

.PHONY: run
run: $(STAMP) ## Serve on http://127.0.0.1:8000 with the embedded SQLite database
	$(BIN)/pleno serve

.PHONY: test
test: $(STAMP) ## Run the whole suite (unit, integration, deploy) with coverage
	$(BIN)/coverage erase
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(STAMP) ## Run only the fast, hermetic unit tier
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src tests bench

.PHONY: fmt
fmt: $(STAMP) ## Format and autofix the code
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

.PHONY: lock
lock: $(STAMP) ## Re-pin requirements*.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -q -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --python-version 3.11 --generate-hashes -q -o requirements-dev.lock

.PHONY: clean
clean: ## Remove the venv, caches and runtime data under var/
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Knobs: BENCH_DURATION=10 BENCH_ROUNDS=3 BENCH_WARMUP=2 BENCH_STARTS=5 BENCH_CONNECTIONS=32
# BENCH_RSS_REQUESTS=10000 BENCH_VARIANTS=off,traces_10 (bare always runs).
# Smoke run: BENCH_DURATION=3 BENCH_ROUNDS=1 make bench. BENCH_PUBLISH=1 writes docs/benchmarks.md.
.PHONY: bench
bench: $(STAMP) ## Overhead benchmark: bare FastAPI vs Pleno's telemetry levels (needs wrk; ~6 min)
	$(BIN)/python -m bench.run
