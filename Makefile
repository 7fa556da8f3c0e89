# Pleno: the single entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# checkov is heavy and pins its own dependency tree: it gets a venv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV := $(CHECKOV_VENV)/bin/checkov

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
test: $(STAMP) $(CHECKOV) ## Run the whole suite (unit, integration, deploy) with coverage
	$(BIN)/coverage erase
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(STAMP) ## Run only the fast, hermetic unit tier
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) $(CHECKOV) ## ruff, mypy --strict, and hadolint + checkov on the Dockerfile
	$(BIN)/ruff check src tests bench loadtest
	$(BIN)/ruff format --check src tests bench loadtest
	$(BIN)/mypy src tests bench loadtest
	$(BIN)/hadolint --failure-threshold warning Dockerfile
	$(CHECKOV) --framework dockerfile --file Dockerfile --quiet --compact --skip-download

$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)

.PHONY: fmt
fmt: $(STAMP) ## Format and autofix the code
	$(BIN)/ruff format src tests bench loadtest
	$(BIN)/ruff check --fix src tests bench loadtest

.PHONY: lock
lock: $(STAMP) ## Re-pin requirements*.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -q -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --python-version 3.11 --generate-hashes -q -o requirements-dev.lock

.PHONY: clean
clean: ## Remove the venv, caches and runtime data under var/
	rm -rf $(VENV) $(CHECKOV_VENV) var .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Knobs: BENCH_DURATION=10 BENCH_ROUNDS=3 BENCH_WARMUP=2 BENCH_STARTS=5 BENCH_CONNECTIONS=32
# BENCH_RSS_REQUESTS=10000 BENCH_VARIANTS=off,traces_10 (bare always runs).
# Smoke run: BENCH_DURATION=3 BENCH_ROUNDS=1 make bench. BENCH_PUBLISH=1 writes docs/benchmarks.md.
.PHONY: bench
bench: $(STAMP) ## Overhead benchmark: bare FastAPI vs Pleno's telemetry levels (needs wrk; ~6 min)
	$(BIN)/python -m bench.run

# podman if present (rootless-friendly, no daemon), else docker. Override: ENGINE=docker make image
ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
IMAGE ?= pleno:latest
# BASE_IMAGE= overrides the Dockerfile's python:3.11-slim (e.g. a local mirror).
BASE_IMAGE ?=
# HEALTHCHECK needs the docker image format; these machines need the ulimits and host network.
# crun refuses a hybrid cgroup layout (as on these machines); runc, where installed, does not.
PODMAN_BUILD_FLAGS := --format docker --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
	$(if $(shell command -v runc),--runtime runc)
.PHONY: image
image: $(STAMP) ## Build the container image (podman or docker), stamped with version, commit and date
	$(ENGINE) build $(if $(filter podman,$(ENGINE)),$(PODMAN_BUILD_FLAGS)) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
		--build-arg VERSION=$$($(BIN)/python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])') \
		--build-arg COMMIT=$$(git rev-parse --short HEAD) \
		--build-arg BUILD_DATE=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
		--tag $(IMAGE) .

# Load testing (docs/loadtest.md). Knobs: LOAD_HOST= (empty: start a local pleno for the run)
# LOAD_USERS LOAD_SPAWN_RATE LOAD_RUN_TIME; the run fails (exit 1) when the error ratio is above
# LOAD_MAX_ERROR_RATIO or the p95 latency above LOAD_MAX_P95_MS (checked by loadtest/locustfile.py).
# The task mix and /work's cost: LOAD_MIX=list=4,get=8,... LOAD_WORK_CPU_MS=50 (see the locustfile).
LOAD_HOST ?=
LOAD_USERS ?= 10
LOAD_SPAWN_RATE ?= 2
LOAD_RUN_TIME ?= 30s
LOAD_MAX_ERROR_RATIO ?= 0.01
LOAD_MAX_P95_MS ?= 500
.PHONY: load
load: $(STAMP) ## Locust headless vs LOAD_HOST or a local pleno; report in var/loadtest/, fails on thresholds
	LOAD_MAX_ERROR_RATIO=$(LOAD_MAX_ERROR_RATIO) LOAD_MAX_P95_MS=$(LOAD_MAX_P95_MS) \
		$(BIN)/python -m loadtest.run --host '$(LOAD_HOST)' --users $(LOAD_USERS) \
		--spawn-rate $(LOAD_SPAWN_RATE) --run-time $(LOAD_RUN_TIME)

CAPACITY_DURATION ?= 20
CAPACITY_USERS ?= 8
.PHONY: capacity
capacity: $(STAMP) ## Measure CPU per request locally; write docs/capacity.md + .png (HPA replicas per req/s)
	$(BIN)/python -m loadtest.capacity --duration $(CAPACITY_DURATION) --users $(CAPACITY_USERS)

.PHONY: hpa-demo
hpa-demo: $(STAMP) ## On minikube: in-cluster load, sample the HPA every 15 s, chart in var/hpa-demo/
	scripts/hpa-demo.sh

# The laptop stack (README "Tracing and the laptop stack"); needs Docker with the compose plugin.
COMPOSE_STACK := -f compose.yaml -f compose.observability.yaml
.PHONY: up stack down
up: ## Docker Compose: the service (frontend + backend) and PostgreSQL
	docker compose up -d
stack: ## Docker Compose: the service plus the whole observability stack
	docker compose $(COMPOSE_STACK) up -d
down: ## Stop the compose stack and drop its volumes
	docker compose $(COMPOSE_STACK) down -v
